"""SIGINT / SIGTERM: a request read between callbacks once a node spins, never an exception in
the middle of one (faults/runtime_faults.py floods a node while it is signalled)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from arx_x5_driver.node_main import ShutdownSignals


@pytest.fixture
def restored_handlers():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_the_first_signal_raises_while_starting_and_no_later_one_does(restored_handlers):
    signals = ShutdownSignals().install()
    assert not signals.requested
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)  # the handler runs at the next bytecode; never reached
    assert signals.requested
    _signal_self(signal.SIGINT)  # a second Ctrl-C during the safe stop


def _signal_self(sig: int) -> None:
    try:
        os.kill(os.getpid(), sig)
        time.sleep(0.01)
    except KeyboardInterrupt:  # caught here: pytest would end the whole run on it
        pytest.fail(f"signal {sig} raised KeyboardInterrupt")


def test_a_deferred_signal_only_asks(restored_handlers):
    signals = ShutdownSignals().install()
    signals.defer()
    _signal_self(signal.SIGINT)
    assert signals.requested


# A run_node node: a timer whose callback signals its own process and then keeps working; the
# callback must end, then the safe stop run, then the process exit 0.
_SIGNAL_IN_CALLBACK = """
import os, signal, time
from rclpy.node import Node
from arx_x5_driver.node_main import run_node

class Probe(Node):
    def __init__(self):
        super().__init__("probe")
        self.create_timer(0.05, self.tick)

    def tick(self):
        os.kill(os.getpid(), signal.SIG{sig})
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            sum(range(100))
        print("CALLBACK_DONE", flush=True)

    def safe_stop(self):
        print("SAFE_STOP", flush=True)

run_node(Probe)
"""

# A node with no timer and nothing to take: its executor has no work at all.
_IDLE = """
from rclpy.node import Node
from arx_x5_driver.node_main import run_node

class Idle(Node):
    def __init__(self):
        super().__init__("idle")
        print("READY", flush=True)

    def safe_stop(self):
        print("SAFE_STOP", flush=True)

run_node(Idle)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, ROS_DOMAIN_ID=str(100 + (os.getpid() + 83) % 100))


@pytest.mark.ros
@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_a_signal_in_a_callback_lets_it_finish(sig):
    res = subprocess.run(
        [sys.executable, "-c", _SIGNAL_IN_CALLBACK.format(sig=sig)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.split()
    assert lines[:2] == ["CALLBACK_DONE", "SAFE_STOP"], res.stdout


@pytest.mark.ros
def test_a_node_with_no_work_still_sees_the_signal():
    proc = subprocess.Popen(
        [sys.executable, "-c", _IDLE],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(0.5)  # spinning, with nothing to wake its wait
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "SAFE_STOP" in out
