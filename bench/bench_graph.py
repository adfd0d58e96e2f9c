"""Benchmark (not a test): the rollout graph's control rate on the simulated rig, three cameras.

    python bench/bench_graph.py                  # the driver in its own process, then in one
    python bench/bench_graph.py --duration 20 --modes own-process

Runs `habc-rollout backend=sim --episode ... --seed 1` (DriftPolicy, simulated operator,
recorder writing the bag) and reads the arm driver's own end-of-run line: ticks, rate,
overruns, tick mean and max. Bound: overruns < 1 % of ticks at 30 Hz (issue 17). Peak memory is
the runner process's (the driver's process has its own, not included).
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile

LINE = re.compile(
    r"after (?P<ticks>\d+) ticks in (?P<s>[\d.]+) s \((?P<hz>[\d.]+) Hz, (?P<over>\d+) overruns; "
    r"tick mean (?P<mean>[\d.]+) ms, max (?P<max>[\d.]+) ms\)"
)
MODES = {"own-process": [], "one-process": ["--no-driver-process"]}
BOUND = 0.01


def run(mode: str, duration: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="habc-bench-graph-") as tmp:
        cmd = ["habc-rollout", "backend=sim", f"data_root={tmp}", *MODES[mode]]
        cmd += ["--episode", "put the marker in the pouch", "--seed", "1"]
        cmd += ["--episodes", "1", "--duration", str(duration)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    text = out.stdout + out.stderr
    m = LINE.search(text)
    if out.returncode != 0 or m is None:
        raise SystemExit(f"{mode}: habc-rollout failed ({out.returncode}): {text[-800:]}")
    r = {k: float(v) for k, v in m.groupdict().items()}
    r["mode"] = mode
    r["child_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return r


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    p.add_argument("--duration", type=float, default=10.0, help="episode length [s]")
    args = p.parse_args()
    print("sim rig, 3 cameras at 96 px, 30 Hz; bound: overruns < 1 % of ticks")
    print(
        f"{'mode':<12} {'ticks':>6} {'Hz':>5} {'overruns':>8} {'share':>6} {'tick mean':>9} "
        f"{'max ms':>7} {'peak MB':>8}"
    )
    for mode in args.modes:
        r = run(mode, args.duration)
        share = r["over"] / max(r["ticks"], 1)
        flag = "" if share < BOUND else "  (over the bound)"
        print(
            f"{mode:<12} {int(r['ticks']):6d} {r['hz']:5.1f} {int(r['over']):8d} {share:6.1%} "
            f"{r['mean']:9.1f} {r['max']:7.1f} {r['child_peak_mb']:8.0f}{flag}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
