"""Chunk jitter: the median second difference of commanded EE positions, per source.

A person's or a scripted expert's hand moves along smooth segments (second difference ~0 per
tick); a policy whose sampled chunks keep per-step noise zig-zags. The measure is
``|| a_pos[t+1] - 2 a_pos[t] + a_pos[t-1] ||`` per arm and tick, in mm, over triples that lie in
one episode and one source: `demo` (demonstrations), `policy` (rollout frames under POLICY) and
`human` (rollout frames under HUMAN authority). A takeover boundary is left out.

    python -m habc_trainer.smoothness <store> [<store> ...]
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from habc_core.cli import ArgumentParser, UserError, one_line, user_errors
from habc_core.features import ACTION, HUMAN
from habc_trainer.store import EpisodeStore, StoreError

SOURCES: tuple[str, ...] = ("demo", "policy", "human")
POS_DIMS = 3  # xyz lead each arm's EE action slice (features.PROPRIO layout)


@dataclass(frozen=True)
class Jitter:
    """Second-difference statistics of one source, in mm per tick."""

    source: str
    samples: int
    median_mm: float
    p90_mm: float

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "source": self.source,
            "samples": self.samples,
            "median_mm": self.median_mm,
            "p90_mm": self.p90_mm,
        }


def second_difference_mm(positions: np.ndarray) -> np.ndarray:
    """(T, 3) positions in m -> (T - 2,) norms of the second difference in mm."""
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != POS_DIMS:
        raise ValueError(f"positions: expected shape (T, {POS_DIMS}), got {p.shape}")
    if len(p) < 3:
        return np.zeros(0)
    return np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=1) * 1e3


def chunk_second_difference_mm(chunks: np.ndarray, n_arms: int) -> np.ndarray:
    """(N, H, D) action chunks (metres) -> (N * (H - 2) * n_arms,) second differences in mm."""
    c = np.asarray(chunks, dtype=np.float64)
    if c.ndim != 3 or c.shape[2] % n_arms:
        raise ValueError(f"chunks: expected (N, H, D) with D divisible by {n_arms}, got {c.shape}")
    arm_dim = c.shape[2] // n_arms
    out = [
        second_difference_mm(chunk[:, a * arm_dim : a * arm_dim + POS_DIMS])
        for chunk in c
        for a in range(n_arms)
    ]
    return np.concatenate(out) if out else np.zeros(0)


def episode_jitter(action: np.ndarray, human: np.ndarray, is_demo: bool) -> dict[str, np.ndarray]:
    """One episode's (T, D) executed actions and (T, A) HUMAN flags -> source -> samples (mm)."""
    action, human = np.asarray(action), np.asarray(human, dtype=bool)
    n_arms = human.shape[1]
    arm_dim = action.shape[1] // n_arms
    out: dict[str, list[np.ndarray]] = {s: [] for s in SOURCES}
    for a in range(n_arms):
        d2 = second_difference_mm(action[:, a * arm_dim : a * arm_dim + POS_DIMS])
        if is_demo:
            out["demo"].append(d2)
            continue
        h = human[:, a]
        same = (h[2:] == h[1:-1]) & (h[1:-1] == h[:-2])  # no takeover inside the triple
        out["human"].append(d2[same & h[1:-1]])
        out["policy"].append(d2[same & ~h[1:-1]])
    return {s: np.concatenate(v) if v else np.zeros(0) for s, v in out.items()}


def summarize(samples: dict[str, Iterable[np.ndarray]]) -> list[Jitter]:
    rows = []
    for source in SOURCES:
        parts = list(samples.get(source, ()))
        x = np.concatenate(parts) if parts else np.zeros(0)
        if len(x):
            rows.append(
                Jitter(source, int(len(x)), float(np.median(x)), float(np.percentile(x, 90)))
            )
    return rows


def store_jitter(store) -> list[Jitter]:
    """Jitter per source over every episode of an EpisodeStore."""
    acc: dict[str, list[np.ndarray]] = {s: [] for s in SOURCES}
    for i, entry in enumerate(store.episodes):
        per = episode_jitter(
            store.array(ACTION, i), store.array(HUMAN, i), entry["source"] == "demo"
        )
        for s, x in per.items():
            acc[s].append(x)
    return summarize(acc)


def format_table(rows: Sequence[Jitter]) -> str:
    lines = ["| source | arm-ticks | median mm | p90 mm |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.source} | {r.samples} | {r.median_mm:.2f} | {r.p90_mm:.2f} |" for r in rows]
    return "\n".join(lines)


PROG = "python -m habc_trainer.smoothness"


def open_stores(paths: Sequence[str]) -> list:
    """Every store opened (and its action / authority arrays found) before any is measured:
    a bad path among several is refused up front, not after the first tables were printed."""
    if len(set(paths)) != len(paths):
        raise UserError(f"stores: one given twice in {list(paths)}")
    stores = []
    for path in paths:
        if not Path(path).is_dir():
            raise UserError(f"{path}: no such store directory")
        try:
            store = EpisodeStore(path)
        except (OSError, StoreError, ValueError, KeyError) as exc:
            reason = one_line(exc).removeprefix(f"{path}: ")  # the store names the path too
            raise UserError(f"{path}: {reason}") from None
        missing = [k for k in (ACTION, HUMAN) if k not in store.keys]
        if missing:
            raise UserError(f"{path}: the store has no {', '.join(missing)} arrays")
        stores.append(store)
    return stores


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("stores", nargs="+")
    with user_errors(PROG):
        args = p.parse_args(argv)
        stores = open_stores(args.stores)
    for path, store in zip(args.stores, stores, strict=True):
        print(f"{path}: executed EE-position second difference per source")
        print(format_table(store_jitter(store)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
