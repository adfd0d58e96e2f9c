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
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from habc_benchmark.config import find_root, load_preset
from habc_benchmark.plan import build_tasks, seed_context, with_dependencies
from habc_benchmark.report import build_report
from habc_benchmark.runner import Runner
from habc_benchmark.seeds import check_plans_disjoint
from habc_core.cli import ArgumentParser, UserError, positive_int, user_errors

PROG = "habc-benchmark"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu", help="config/experiment_<preset>.yaml")
    p.add_argument(
        "--seeds", default=None, help="comma-separated protocol seeds (default: the preset's)"
    )
    p.add_argument(
        "--tracks", default=None, help="comma-separated: state,pixel (default: all the preset has)"
    )
    p.add_argument(
        "--workers", type=positive_int, default=None, help="processes (default: preset)"
    )
    p.add_argument("--out", type=Path, default=None, help="run directory")
    p.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="where results.md and results/ go (default: <root>/docs)",
    )
    p.add_argument("--report-only", action="store_true", help="only regenerate the report")
    p.add_argument("--no-report", action="store_true", help="skip the report")
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="run only the diagnostic (controlled round-1 arms + analysis of SFT on "
        "round 1's data) and what it depends on",
    )
    return p.parse_args(argv)


def _seeds(text: str) -> tuple[int, ...]:
    """--seeds "0,2" -> (0, 2); each must be a non-negative integer."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit():
            raise UserError(
                f"--seeds: expected comma-separated protocol seeds like 0,1,2, got {text!r}"
            )
        out.append(int(item))
    return tuple(out)


def refuse_combinations(args: argparse.Namespace) -> None:
    """Flags that would be silently ignored together, refused before anything runs:
    --report-only with --no-report (nothing to do), with --workers, --diagnose, --seeds or
    --tracks (the report covers every seed and track of the preset; nothing runs); --no-report
    with --docs (nothing is written there)."""
    if args.report_only:
        given = {
            "--no-report": args.no_report,
            "--workers": args.workers is not None,
            "--diagnose": args.diagnose,
            "--seeds": args.seeds is not None,
            "--tracks": args.tracks is not None,
        }
        for flag, on in given.items():
            if on:
                why = (
                    "nothing would be done"
                    if flag == "--no-report"
                    else "nothing runs and the report covers every seed and track of the preset"
                )
                raise UserError(f"{flag}: not with --report-only ({why})")
    if args.no_report and args.docs is not None:
        raise UserError("--docs: not with --no-report (no report is written)")


def code_version(root: Path) -> str:
    """Commit and whether the tree had local changes: a resumed run may mix code versions."""

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *a], capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{' (dirty)' if dirty else ''}"


def main(argv: Sequence[str] | None = None) -> int:
    with user_errors(PROG):
        args = _parse(argv)
        refuse_combinations(args)
        root = find_root()
        cfg = report_cfg = load_preset(args.preset, root)
        if args.seeds is not None:
            cfg = cfg.with_seeds(_seeds(args.seeds))
        if args.workers is not None:
            cfg = dataclasses.replace(cfg, workers=args.workers)
        tracks = tuple(args.tracks.split(",")) if args.tracks is not None else tuple(cfg.tracks())
        bad = [t for t in tracks if t not in cfg.tracks()]
        if bad:
            raise ValueError(f"--tracks: {bad} not in this preset's {list(cfg.tracks())}")
        if len(set(tracks)) != len(tracks):
            raise ValueError(f"--tracks: a track twice in {args.tracks!r}")
        out = (args.out or root / "out" / "benchmark" / cfg.name).resolve()
        for flag, path in (("--out", out), ("--docs", args.docs)):
            if path is not None and path.exists() and not path.is_dir():
                raise UserError(f"{flag}: {path} is a file; give a directory")
        for t in tracks:
            check_plans_disjoint(
                [seed_context(cfg, t, s, out, root).plan for s in cfg.seeds_of(t)]
            )
        if args.diagnose and not any(cfg.diagnosed("state", s) for s in cfg.seeds):
            raise ValueError(
                f"--diagnose: preset {cfg.name!r} diagnoses no protocol seed of "
                f"{list(cfg.seeds)} (set diagnose: true and diagnose_seeds)"
            )
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
        log(
            f"{command}: {len(tasks)} tasks, {cfg.workers} workers, out {out}, "
            f"code {code_version(root)}"
        )
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
