"""Comparisons on matched protocol seeds, typed: an arm against SFT, an ablation against the
method it varies, the control arm against SFT and against every method's round 1.

Each compares like with like: the other cell is counted only over the seeds the arm finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from habc_benchmark.report.model import Cell, Count, TrackResults
from habc_benchmark.stats import two_proportion_z

Z_SIGNIFICANT = 1.96


def z_of(a: Count, b: Count) -> float:
    return two_proportion_z(a.successes, a.n, b.successes, b.n)


class Side(Enum):
    """Where an arm lies relative to SFT at |z| >= 1.96."""

    ABOVE = "above"
    BELOW = "below"
    APART = "not significantly apart from"


def side_of(z: float) -> Side:
    return Side.ABOVE if z >= Z_SIGNIFICANT else Side.BELOW if z <= -Z_SIGNIFICANT else Side.APART


@dataclass(frozen=True)
class Versus:
    """An arm's cell against another cell on the arm's seeds."""

    round_index: int
    arm: Count
    other: Count

    @property
    def z(self) -> float:
        return z_of(self.arm, self.other)

    @property
    def side(self) -> Side:
        return side_of(self.z)


def vs_sft(td: TrackResults, cell: Cell | None) -> Versus | None:
    """A cell and SFT on the cell's own seeds; None when either has no trial there."""
    sft = td.sft
    if cell is None or sft is None:
        return None
    a, b = cell.matched(cell.seed_list), sft.matched(cell.seed_list)
    if not a.n or not b.n:
        return None
    return Versus(cell.round_index, a, b)


@dataclass(frozen=True)
class AblationReading:
    name: str
    base: str  # the method the ablation varies
    overrides: Mapping[str, Any]
    rounds: tuple[Versus, ...]  # the ablation against its base, round by round
    against_sft: Versus | None  # its last step-1 round against SFT


def ablation_readings(
    td: TrackResults, ablations: Mapping[str, Mapping[str, Any]], rounds: int
) -> list[AblationReading]:
    """Each ablation arm against the method it varies, round by round, pooled over seeds."""
    out = []
    for name, arm in ablations.items():
        base = arm["method"]
        parts = []
        for r in range(1, rounds + 1):
            cell_a, cell_b = td.cell(name, r), td.cell(base, r)
            if not cell_a or not cell_b:
                continue
            a = cell_a.matched(cell_a.seed_list)
            b = cell_b.matched(cell_a.seed_list)  # the base on the same seeds
            if a.n and b.n:
                parts.append(Versus(r, a, b))
        if parts:
            out.append(
                AblationReading(
                    name,
                    base,
                    arm.get("train_overrides") or {},
                    tuple(parts),
                    vs_sft(td, td.cell(name, rounds)),
                )
            )
    return out


@dataclass(frozen=True)
class VersusSftReading:
    method: str
    seeds: tuple[int, ...]  # every seed any of its compared rounds finished
    rounds: tuple[Versus, ...]


def versus_sft_readings(
    td: TrackResults, methods: list[str], rounds: int
) -> list[VersusSftReading]:
    """Each method's rounds against SFT on the seeds that method finished (the pixel track's
    comparison, where the grid has no other baseline)."""
    out = []
    for m in methods:
        parts: list[Versus] = []
        seeds: set[int] = set()
        for r in range(1, rounds + 1):
            cell = td.cell(m, r)
            vs = vs_sft(td, cell)
            if cell is None or vs is None:
                continue
            seeds.update(cell.seed_list)
            parts.append(vs)
        if parts:
            out.append(VersusSftReading(m, tuple(sorted(seeds)), tuple(parts)))
    return out


@dataclass(frozen=True)
class ControlReading:
    """The control arm (SFT trained on, demos only) on its last round's seeds."""

    seeds: tuple[int, ...]
    rates: tuple[tuple[int, float | None], ...]  # (round, success rate on `seeds`)
    sft: Count
    last: Count  # the control's last round

    round1: Count | None  # the control's round 1, when it and some method's round 1 finished
    first: tuple[tuple[str, Count], ...]  # every method's round 1 on `seeds`

    @property
    def z(self) -> float:
        return z_of(self.last, self.sft)

    @property
    def falls_below_sft(self) -> bool:
        return self.z <= -Z_SIGNIFICANT

    def z_vs_round1(self, c: Count) -> float:
        assert self.round1 is not None
        return z_of(c, self.round1)


def control_reading(
    td: TrackResults, control: Mapping[int, Cell], first: Mapping[str, Cell]
) -> ControlReading | None:
    """The control arm against SFT and against round 1 of every method, on matched seeds;
    None when SFT never succeeded on those seeds (nothing to fall below)."""
    sft = td.sft
    assert sft is not None  # the control only trains on from a finished SFT
    seeds = control[max(control)].seed_list
    base = sft.matched(seeds)
    if not base.n or not base.successes:
        return None

    def rate(c: Cell) -> float | None:
        m = c.matched(seeds)
        return m.rate if m.n else None

    c1 = control.get(1)
    round1 = c1.matched(seeds) if c1 and first else None
    rows = tuple((m, c) for m, a in first.items() if (c := a.matched(seeds)).n)
    return ControlReading(
        seeds=seeds,
        rates=tuple((r, rate(a)) for r, a in sorted(control.items())),
        sft=base,
        last=control[max(control)].matched(seeds),
        round1=round1,
        first=rows if round1 is not None else (),
    )
