"""Benchmark (not a test): the rollout graph's control rate on the simulated rig, three cameras.

    python bench/bench_graph.py     # driver and recorder in processes of their own, then not
    python bench/bench_graph.py --duration 20 --modes own-process

Runs `habc-rollout backend=sim --episode ... --seed 1` (DriftPolicy, simulated operator,
recorder writing the bag) and reads the arm driver's own end-of-run lines: ticks, rate,
overruns, tick mean and max, the tick period distribution and the slowest 1-s window, and the
observation -> command latency of POLICY rows in its two legs (observation -> mux request, from
the mux; request -> executed tick, from the driver; arx_x5_driver/loop_stats.py). Their p99s
summed bound the whole path's p99. "rec gap": the largest gap in what the recorder received of
an arm's joint_states (habc_core.recording_gaps; one tick is 33 ms, the converter refuses an
episode past 250 ms). own-process: the driver and the recorder each in a process of its own
(habc-rollout's default); one-process: every node in the runner's. Bound: overruns < 1 % of
ticks at 30 Hz (issue 17). Peak memory is the largest child's (the runner; the driver's and the
recorder's own processes are reported apart by the OS, not here).
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from figures import report_figure

from habc_core.recording_gaps import joint_state_gaps

LINE = re.compile(
    r"after (?P<ticks>\d+) ticks in (?P<s>[\d.]+) s \((?P<hz>[\d.]+) Hz, (?P<over>\d+) overruns; "
    r"tick mean (?P<mean>[\d.]+) ms, max (?P<max>[\d.]+) ms(?:, of it [^)]*)?\)"
)
PERIOD = re.compile(
    r"tick period p50 (?P<p50>[\d.]+) / p99 (?P<p99>[\d.]+) / max (?P<max>[\d.]+) ms; "
    r"slowest 1-s window (?P<slowest>[\d.]+) Hz"
)
LEG_MUX = re.compile(r"observation -> mux request p50 (?P<p50>[\d.]+) / p99 (?P<p99>[\d.]+) ms")
LEG_DRIVER = re.compile(r"mux request -> executed\) p50 (?P<p50>[\d.]+) / p99 (?P<p99>[\d.]+) ms")
MODES = {"own-process": [], "one-process": ["--no-driver-process", "--no-recorder-process"]}
BOUND = 0.01


def run(mode: str, duration: float, overrides: tuple[str, ...] = ()) -> dict:
    with tempfile.TemporaryDirectory(prefix="habc-bench-graph-") as tmp:
        cmd = ["habc-rollout", "backend=sim", f"data_root={tmp}", *overrides, *MODES[mode]]
        cmd += ["--episode", "put the marker in the pouch", "--seed", "1"]
        cmd += ["--episodes", "1", "--duration", str(duration)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
        bags = sorted({p.parent for p in Path(tmp).rglob("*.mcap")})
        gaps = [g.largest_ms for bag in bags for g in joint_state_gaps(bag)]
    text = out.stdout + out.stderr
    m = LINE.search(text)
    if out.returncode != 0 or m is None:
        raise SystemExit(f"{mode}: habc-rollout failed ({out.returncode}): {text[-800:]}")
    r = {k: float(v) for k, v in m.groupdict().items()}
    for prefix, pattern in (("period_", PERIOD), ("mux_", LEG_MUX), ("driver_", LEG_DRIVER)):
        found = pattern.search(text)
        if found is None:
            raise SystemExit(f"{mode}: no {prefix.rstrip('_')} line in: {text[-800:]}")
        r.update({prefix + k: float(v) for k, v in found.groupdict().items()})
    r["mode"] = mode
    r["recorder_gap_ms"] = max(gaps, default=float("nan"))
    r["child_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return r


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    p.add_argument("--duration", type=float, default=10.0, help="episode length [s]")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="habc-rollout overrides, e.g. arm_driver.loop_priority=0 (the normal scheduler)",
    )
    args = p.parse_args()
    print("sim rig, 3 cameras at 96 px, 30 Hz; bound: overruns < 1 % of ticks")
    print(
        f"{'mode':<12} {'ticks':>6} {'Hz':>5} {'overruns':>8} {'share':>6} {'tick mean':>9} "
        f"{'max ms':>7} {'period p50/p99/max ms':>22} {'slowest s':>9} "
        f"{'obs->mux p50/p99':>16} {'mux->exec p50/p99':>17} {'rec gap ms':>10} {'peak MB':>8}"
    )
    results = {}
    for mode in args.modes:
        r = results[mode] = run(mode, args.duration, tuple(args.overrides))
        share = r["over"] / max(r["ticks"], 1)
        flag = "" if share < BOUND else "  (over the bound)"
        period = f"{r['period_p50']:.1f}/{r['period_p99']:.1f}/{r['period_max']:.0f}"
        legs = f"{r['mux_p50']:7.1f}/{r['mux_p99']:<8.1f} "
        legs += f"{r['driver_p50']:8.1f}/{r['driver_p99']:<8.1f}"
        print(
            f"{mode:<12} {int(r['ticks']):6d} {r['hz']:5.1f} {int(r['over']):8d} {share:6.1%} "
            f"{r['mean']:9.1f} {r['max']:7.1f} {period:>22} {r['period_slowest']:8.1f}Hz "
            f"{legs} {r['recorder_gap_ms']:10.0f} {r['child_peak_mb']:8.0f}{flag}"
        )
    first = results[args.modes[0]]
    e2e_p50 = first["mux_p50"] + first["driver_p50"]
    e2e_p99 = first["mux_p99"] + first["driver_p99"]
    print(
        f"{args.modes[0]}: observation -> executed, the legs' p50s summed {e2e_p50:.1f} ms, "
        f"p99s summed (an upper bound of the p99) {e2e_p99:.1f} ms; one tick is 33.3 ms"
    )
    report_figure(
        f"graph overruns at 30 Hz ({args.modes[0]}, sim rig, 3 cameras)",
        100.0 * first["over"] / max(first["ticks"], 1),
        100.0 * BOUND,
        "%",
        peak_mb=first["child_peak_mb"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
