"""`habc-benchmark`: the paper's protocol on the simulated rig, end to end, from nothing.

    habc-benchmark --preset smoke                # minutes: the test suite runs this
    habc-benchmark --preset cpu                  # both tracks, 3 seeds each (state seed: ~22 min)
    habc-benchmark --preset cpu --seeds 0        # only protocol seed 0
    habc-benchmark --preset gpu --workers 8      # the bigger run, pixel comparison included
    habc-benchmark --preset cpu --report-only    # regenerate docs/results.md from what finished
    habc-benchmark --preset cpu --diagnose       # only the diagnostic's round-1 arms (diagnose.py)

Everything lands under `--out` (default out/benchmark/<preset>); rerunning resumes and skips
finished cells. docs/results.md, docs/results/*.png and docs/results/results.json are written
at the end (and with --report-only at any time).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from habc_control.experiment.config import find_root, load_preset
from habc_control.experiment.plan import build_tasks, seed_context, with_dependencies
from habc_control.experiment.report import build_report
from habc_control.experiment.runner import Runner
from habc_control.experiment.seeds import SeedOverlapError, check_plans_disjoint


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="habc-benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu", help="config/experiment_<preset>.yaml")
    p.add_argument("--seeds", default=None,
                   help="comma-separated protocol seeds (default: the preset's)")
    p.add_argument("--tracks", default=None, help="comma-separated: state,pixel (default: all "
                   "the preset has)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: preset)")
    p.add_argument("--out", type=Path, default=None, help="run directory")
    p.add_argument("--docs", type=Path, default=None,
                   help="where results.md and results/ go (default: <root>/docs)")
    p.add_argument("--report-only", action="store_true", help="only regenerate the report")
    p.add_argument("--no-report", action="store_true", help="skip the report")
    p.add_argument("--diagnose", action="store_true",
                   help="run only the diagnostic (controlled round-1 arms + analysis of SFT on "
                   "round 1's data) and what it depends on")
    return p.parse_args(argv)


def code_version(root: Path) -> str:
    """Commit and whether the tree had local changes: a resumed run may mix code versions."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True,
                              check=False).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{' (dirty)' if dirty else ''}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    root = find_root()
    try:
        cfg = report_cfg = load_preset(args.preset, root)
        if args.seeds:
            cfg = cfg.with_seeds(tuple(int(s) for s in args.seeds.split(",")))
        if args.workers is not None:
            cfg = dataclasses.replace(cfg, workers=args.workers)
        tracks = tuple(args.tracks.split(",")) if args.tracks else tuple(cfg.tracks())
        bad = [t for t in tracks if t not in cfg.tracks()]
        if bad:
            raise ValueError(f"tracks: {bad} not in this preset's {list(cfg.tracks())}")
        out = (args.out or root / "out" / "benchmark" / cfg.name).resolve()
        for t in tracks:
            check_plans_disjoint([seed_context(cfg, t, s, out, root).plan
                                  for s in cfg.seeds_of(t)])
        if args.diagnose and not any(cfg.diagnosed("state", s) for s in cfg.seeds):
            raise ValueError(f"--diagnose: preset {cfg.name!r} diagnoses no protocol seed of "
                             f"{list(cfg.seeds)} (set diagnose: true and diagnose_seeds)")
    except (ValueError, SeedOverlapError) as exc:
        print(f"habc-benchmark: error: {exc}", file=sys.stderr)
        return 2
    docs = args.docs or root / "docs"
    command = "habc-benchmark " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "benchmark.log"

    def log(msg: str) -> None:
        line = f"[{dt.datetime.now():%H:%M:%S}] {msg}"
        print(line, flush=True)
        with log_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    status = {}
    if not args.report_only:
        tasks = build_tasks(cfg, out, root, tracks)
        if args.diagnose:
            tasks = with_dependencies(tasks, [t for t in tasks if t.kind == "diagnose"])
        log(f"{command}: {len(tasks)} tasks, {cfg.workers} workers, out {out}, "
            f"code {code_version(root)}")
        status = Runner(tasks, cfg.workers, out / "progress.json", log).run()
    if not args.no_report:
        # The report covers every seed and track of the preset: a run of a subset shows the
        # rest as pending instead of presenting the subset as the whole protocol.
        build_report(report_cfg, out, root, docs, command)
        log(f"report: {docs / 'results.md'}")
    failed = [k for k, s in status.items() if s.get("state") in ("failed", "blocked")]
    if failed:
        log(f"{len(failed)} tasks failed or blocked: {failed[:8]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
