"""Fast DDS builtin transports under participant churn: which ones crash or hang.

Every test, the in-process runner and every `ros2 run` creates and destroys DDS participants.
This starts `--procs` processes per transport on one DDS domain; each creates a context with two
nodes, exchanges a few 50 kB messages through a multi-threaded executor, shuts it all down, and
repeats `--cycles` times. A process that aborts (exit < 0 or 134) or outlives `--timeout` counts
as a failure of that transport. Prints a table; never pass/fail.

    python bench/bench_dds_churn.py                       # DEFAULT vs LARGE_DATA, 3 x 200 cycles
    python bench/bench_dds_churn.py --transports SHM --cycles 50

Measured on the 2-core dev box (2026-11-22): LARGE_DATA aborted 2 of 3 processes within 400
cycles ("terminate called ... std::system_error: local_endpoint: Bad file descriptor", from its
TCP channel); DEFAULT ran 3 x 400 cycles without a failure. Hence scripts/env.sh's default.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import textwrap
import time

_CHILD = textwrap.dedent(
    """
    import sys, threading, time
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from std_msgs.msg import String

    cycles, tag, domain = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for i in range(cycles):
        ctx = Context()
        rclpy.init(context=ctx, domain_id=domain)
        a = rclpy.create_node(f"a{tag}_{i}", context=ctx)
        b = rclpy.create_node(f"b{tag}_{i}", context=ctx)
        got = []
        b.create_subscription(String, f"/churn_{tag}", got.append, 10)
        pub = a.create_publisher(String, f"/churn_{tag}", 10)
        ex = MultiThreadedExecutor(num_threads=2, context=ctx)
        ex.add_node(a)
        ex.add_node(b)
        spinner = threading.Thread(target=ex.spin, daemon=True)
        spinner.start()
        a.create_timer(0.01, lambda: pub.publish(String(data="x" * 50_000)))
        deadline = time.monotonic() + 5.0
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        ex.shutdown(timeout_sec=2.0)
        spinner.join(timeout=2.0)
        a.destroy_node()
        b.destroy_node()
        rclpy.shutdown(context=ctx)
        print(i, len(got), flush=True)
    """
)


def _run_transport(transport: str, procs: int, cycles: int, timeout: float, domain: int):
    env = dict(os.environ, FASTDDS_BUILTIN_TRANSPORTS=transport)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(cycles), f"{transport}{k}", str(domain)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(procs)
    ]
    t0 = time.monotonic()
    rows = []
    for proc in children:
        left = max(1.0, timeout - (time.monotonic() - t0))
        try:
            out, err = proc.communicate(timeout=left)
            state = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            state = "hung"
        done = sum(1 for line in out.splitlines() if line.strip())
        last_err = next(
            (
                ln
                for ln in reversed(err.splitlines())
                if ln.strip() and "never retrieved" not in ln
            ),
            "",
        )
        rows.append((state, done, last_err.strip()[:90]))
    return rows, time.monotonic() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transports", default="DEFAULT,LARGE_DATA")
    p.add_argument("--procs", type=int, default=3)
    p.add_argument("--cycles", type=int, default=200)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per transport")
    p.add_argument("--domain", type=int, default=151)
    args = p.parse_args(argv)
    for name, value in (("procs", args.procs), ("cycles", args.cycles)):
        if value < 1:
            raise SystemExit(f"--{name}: must be >= 1, got {value}")
    print(f"{args.procs} processes x {args.cycles} create/exchange/destroy cycles per transport")
    print(f"{'transport':<12} {'failed':>6} {'cycles done':>12} {'wall s':>7}  first failure")
    for transport in args.transports.split(","):
        rows, wall = _run_transport(transport, args.procs, args.cycles, args.timeout, args.domain)
        failed = [r for r in rows if r[0] != "ok"]
        first = f"{failed[0][0]}: {failed[0][2]}" if failed else ""
        print(
            f"{transport:<12} {len(failed):>6} {sum(r[1] for r in rows):>12} {wall:>7.1f}  {first}"
        )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of one child: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
