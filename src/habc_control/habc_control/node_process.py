"""One node of the graph in a process of its own, as `ros2 launch` runs every node on a robot.

The in-process runner keeps most nodes in one process (one executor, one GIL). The arm driver's
control loop is the graph's clock; sharing the GIL with the executor of six other nodes made it
overrun its 33 ms tick: with the sim rig and three cameras 26 of 261 ticks (10 %) in-process,
0 of 500 in a process of its own (docs/nodes.md, "Measured"). The child runs the node's
console-script `main` (node_main.run_node: lifecycle bring-up, fail-safe shutdown on SIGINT)
with the graph's merged parameters as a standard params file, on the same DDS domain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from habc_control.graph import NodeSpec, write_params_file

STOP_TIMEOUT_S = 10.0  # the driver's safe stop (X5: damping) gets this long after SIGINT


class NodeProcess:
    """`spec`'s node running `python -c 'from <module> import main; main()'` with the graph's
    params file; `stop()` sends SIGINT (the node's own fail-safe shutdown), then waits."""

    def __init__(self, spec: NodeSpec, config: Mapping[str, Any], domain_id: int) -> None:
        self.spec = spec
        self._dir = tempfile.TemporaryDirectory(prefix=f"habc-{spec.name}-")
        params = write_params_file(config, Path(self._dir.name) / "params.yaml")
        self.log_path = Path(self._dir.name) / "node.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
        code = f"from {spec.module} import main; main()"
        cmd = [sys.executable, "-c", code, "--ros-args", "--params-file", str(params)]
        cmd += ["-r", f"__node:={spec.name}"]
        # Its own session: the runner decides when it stops (after HOLD is published).
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def tail(self, lines: int = 5) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.spec.name}: its process exited with {self.proc.returncode}: {self.tail()}"
            )

    def stop(self) -> str:
        """SIGINT, wait for the node's own shutdown; its last log lines (more when it failed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode == 0:
            out = self.tail(2)  # the driver's end of run: rate and overruns, then loop timing
        else:  # enough of the log to hold the traceback's frames, not only its last line
            out = f"exited with {self.proc.returncode}: {self.tail(12)}"
        self._log.close()
        self._dir.cleanup()
        return out
