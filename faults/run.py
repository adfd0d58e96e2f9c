"""Run the fault suite and write the reliability report (`make faults`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faults.core import Fault, NotSurvived
from faults.registry import all_faults

REPO = Path(__file__).resolve().parents[1]


@dataclass
class FaultResult:
    fault: Fault
    injected: int = 0
    survived: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def run_trial(fault: Fault, param: object) -> tuple[bool, str | None]:
    """One injection in a fresh directory: (survived, note or what was lost)."""
    with tempfile.TemporaryDirectory(prefix=f"fault-{fault.name}-") as tmp:
        try:
            return True, fault.inject(param, Path(tmp))
        except (NotSurvived, AssertionError) as exc:
            return False, f"{param!r}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a crash of the system under test is a result
            last = traceback.extract_tb(exc.__traceback__)[-1]
            return False, (
                f"{param!r}: crashed: {type(exc).__name__}: {exc} "
                f"({Path(last.filename).name}:{last.lineno})"
            )


def run_fault(fault: Fault, fast: bool, progress: bool = True) -> FaultResult:
    result = FaultResult(fault)
    start = time.perf_counter()
    params = list(fault.trials(fast))
    for i, param in enumerate(params):
        ok, note = run_trial(fault, param)
        result.injected += 1
        result.survived += ok
        if ok and note:
            result.notes.append(note)
        elif not ok:
            result.failures.append(note or repr(param))
        if progress:
            print(
                f"\r  {fault.name}: {i + 1}/{len(params)} ({result.injected - result.survived} "
                "not survived)",
                end="",
                file=sys.stderr,
                flush=True,
            )
    if progress:
        print(file=sys.stderr)
    result.seconds = time.perf_counter() - start
    return result


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" (dirty)" if dirty else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: Sequence[FaultResult], fast: bool) -> str:
    injected = sum(r.injected for r in results)
    survived = sum(r.survived for r in results)
    lines = [
        "# Reliability: faults injected and survived",
        "",
        "Written by `make faults` (`python -m faults.run`"
        + (" --fast" if fast else "")
        + f") at code {_commit()}; do not edit by hand.",
        "Each fault is injected in a fresh directory and counts as survived only when nothing",
        'was lost, nothing crashed and the robot side stayed safe (the "survived when" column',
        "says what the trial checks). `tests/test_faults.py` runs a few trials of each in",
        "`make test`.",
        "",
        f"**{survived} of {injected} injections survived** across {len(results)} faults.",
        "",
        "| fault | area | injected | survived when | injected × | survived × | s |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        f = r.fault
        lines.append(
            f"| `{f.name}` | {f.area} | {_cell(f.injected)} | {_cell(f.survived_when)} "
            f"| {r.injected} | {r.survived} | {r.seconds:.1f} |"
        )
    noted = [r for r in results if r.notes or r.failures]
    if noted:
        lines += ["", "## Notes per fault", ""]
    for r in noted:
        lines.append(f"- `{r.fault.name}`:")
        for note in _summarise(r.notes):
            lines.append(f"  - {_cell(note)}")
        for failure in r.failures[:5]:
            lines.append(f"  - **not survived** {_cell(failure)}")
        if len(r.failures) > 5:
            lines.append(f"  - … and {len(r.failures) - 5} more not survived")
    return "\n".join(lines) + "\n"


def _summarise(notes: list[str], limit: int = 6) -> list[str]:
    """Distinct notes, most common first, so a sweep of 40 offsets reads as a few lines."""
    counts: dict[str, int] = {}
    for note in notes:
        counts[note] = counts.get(note, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    out = [f"{note}" + (f" (×{n})" if n > 1 else "") for note, n in ordered[:limit]]
    if len(ordered) > limit:
        out.append(f"… {len(ordered) - limit} other notes")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="faults", description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="a few trials per fault (the test subset)")
    p.add_argument("--only", nargs="*", default=[], metavar="NAME", help="run these faults only")
    p.add_argument(
        "--out",
        type=Path,
        default=REPO / "docs" / "reliability.md",
        help="report path (default: docs/reliability.md)",
    )
    p.add_argument("--list", action="store_true", help="list the faults and exit")
    args = p.parse_args(argv)
    faults = all_faults()
    if args.list:
        for f in faults:
            print(f"{f.name:32s} {f.area:12s} {f.injected}")
        return 0
    unknown = sorted(set(args.only) - {f.name for f in faults})
    if unknown:
        p.error(f"--only: unknown fault(s) {unknown}; see --list")
    chosen = [f for f in faults if not args.only or f.name in args.only]
    results = []
    for fault in chosen:
        print(f"{fault.name} ({fault.area})", file=sys.stderr)
        results.append(run_fault(fault, args.fast))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, args.fast))
    lost = [r.fault.name for r in results if r.survived < r.injected]
    print(
        f"faults: wrote {args.out}; "
        + (
            f"NOT survived: {lost}"
            if lost
            else f"all {sum(r.injected for r in results)} injections survived"
        ),
        file=sys.stderr,
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
