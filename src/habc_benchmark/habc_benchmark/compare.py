"""`habc-benchmark-compare`: did a rerun reproduce an earlier results.json?

    git show bb9cc7d:docs/results/results.json > /tmp/before.json
    habc-benchmark-compare /tmp/before.json docs/results/results.json --out docs/rerun.md

For every cell both runs finished (pooled over the protocol seeds both have), it prints the
two success counts, whether the rerun's rate lies in the earlier Wilson 95 % interval, and the
two-proportion z of the difference. Training is not bit-deterministic on CPU, so a rerun is a
new sample of the same experiment: the question is whether the differences look like sampling
noise, not whether the digits match.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from habc_benchmark.report.model import matched, seed_counts
from habc_benchmark.stats import two_proportion_z, wilson_interval
from habc_core.cli import ArgumentParser, UserError, user_errors

PROG = "habc-benchmark-compare"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable results.json ({exc})") from exc
    if not isinstance(data, dict) or "tracks" not in data:
        raise ValueError(f"{path}: no 'tracks' key; expected habc-benchmark's results.json")
    _check_cells(path, data)
    return data


def _check_cells(path: Path, data: dict[str, Any]) -> None:
    """The part of results.json compare_cells reads, so a damaged file is named up front
    instead of failing with a KeyError halfway through the table."""
    if not isinstance(data["tracks"], dict):
        raise ValueError(f"{path}: 'tracks' is not a mapping")
    for track, entry in data["tracks"].items():
        cells = entry.get("cells") if isinstance(entry, dict) else None
        if not isinstance(cells, dict):
            raise ValueError(f"{path}: tracks.{track} has no 'cells' mapping")
        for key, cell in cells.items():
            if not cell:
                continue  # a cell that did not finish
            per = cell.get("per_seed") if isinstance(cell, dict) else None
            if not isinstance(per, dict) or not all(
                isinstance(v, dict) and {"successes", "n"} <= set(v) for v in per.values()
            ):
                raise ValueError(
                    f"{path}: tracks.{track}.cells.{key}: no per_seed successes / n counts"
                )


def compare_cells(
    before: dict[str, Any], after: dict[str, Any], track: str
) -> list[dict[str, Any]]:
    """One row per cell both runs evaluated, on the protocol seeds both finished."""
    if track not in before["tracks"] or track not in after["tracks"]:
        raise ValueError(f"track: {track!r} is not in both results files")
    rows = []
    cells_a, cells_b = before["tracks"][track]["cells"], after["tracks"][track]["cells"]
    for key, a in cells_a.items():
        b = cells_b.get(key)
        if not a or not b:
            continue
        seeds = sorted(int(s) for s in set(a["per_seed"]) & set(b["per_seed"]))
        if not seeds:
            continue
        ma = matched(seed_counts(a["per_seed"]), seeds)
        mb = matched(seed_counts(b["per_seed"]), seeds)
        (ka, na), (kb, nb) = (ma.successes, ma.n), (mb.successes, mb.n)
        lo, hi = wilson_interval(ka, na)
        z = two_proportion_z(kb, nb, ka, na)
        rows.append(
            {
                "cell": key,
                "seeds": seeds,
                "before": [ka, na],
                "after": [kb, nb],
                "before_ci": [lo, hi],
                "in_interval": lo <= kb / nb <= hi,
                "z": z,
            }
        )
    return rows


def render(rows: list[dict[str, Any]], track: str, labels: tuple[str, str]) -> list[str]:
    if not rows:
        return [f"No cell of the {track} track was finished in both runs."]
    inside = sum(r["in_interval"] for r in rows)
    noisy = [r for r in rows if abs(r["z"]) >= 1.96]
    lines = [
        f"Track `{track}`: {len(rows)} cells finished in both runs ({labels[0]} → {labels[1]}), "
        "pooled over the protocol seeds both have.",
        "",
        f"- the rerun's success rate lies inside the earlier Wilson 95 % interval in {inside} of "
        f"{len(rows)} cells (a second sample of an unchanged rate lands inside the first one's "
        "95 % interval about 83 % of the time, not 95 %);",
        f"- the difference is significant (|z| ≥ 1.96) in {len(noisy)} of {len(rows)} cells "
        f"(about {0.05 * len(rows):.1f} expected by chance alone if nothing changed)"
        + (": " + ", ".join(f"{r['cell']} ({r['z']:+.1f})" for r in noisy) if noisy else "")
        + ".",
        "",
        "| cell | seeds | before | after | before 95 % interval | after inside | z |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        (ka, na), (kb, nb) = r["before"], r["after"]
        lo, hi = r["before_ci"]
        lines.append(
            f"| {r['cell']} | {','.join(map(str, r['seeds']))} | {ka}/{na} = "
            f"{100 * ka / na:.0f} % | {kb}/{nb} = {100 * kb / nb:.0f} % | "
            f"[{100 * lo:.0f}, {100 * hi:.0f}] | {'yes' if r['in_interval'] else 'no'} | "
            f"{r['z']:+.1f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path, help="the earlier results.json")
    p.add_argument("after", type=Path, help="the rerun's results.json")
    p.add_argument(
        "--tracks",
        default=None,
        help="comma-separated tracks (default: every track in both files)",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    with user_errors(PROG):
        args = p.parse_args(argv)
        if args.out is not None:
            # Writing the report over an input would destroy the run it compares.
            for name in ("before", "after"):
                if args.out.resolve() == getattr(args, name).resolve():
                    raise UserError(f"--out: {args.out} is the {name} results.json itself")
            if args.out.is_dir():
                raise UserError(f"--out: {args.out} is a directory; give a file path")
        before, after = _load(args.before), _load(args.after)
        tracks = (
            args.tracks.split(",")
            if args.tracks is not None
            else [t for t in before["tracks"] if t in after["tracks"]]
        )
        for t in tracks:
            if t not in before["tracks"] or t not in after["tracks"]:
                raise UserError(
                    f"--tracks: {t!r} is not in both results files (before: "
                    f"{sorted(before['tracks'])}, after: {sorted(after['tracks'])})"
                )
    labels = (
        f"commit {before.get('commit') or '?'}, {before.get('generated', '?')}",
        f"commit {after.get('commit') or '?'}, {after.get('generated', '?')}",
    )
    lines = [
        "# A rerun against an earlier run",
        "",
        f"GENERATED by `habc-benchmark-compare {args.before.name} {args.after.name}`. "
        "Training is not bit-deterministic on CPU, so a rerun is a fresh sample of the "
        "same experiment; the question is whether the differences look like sampling "
        "noise.",
        "",
    ]
    for t in tracks:
        lines += [f"## {t}", ""] + render(compare_cells(before, after, t), t, labels) + [""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
