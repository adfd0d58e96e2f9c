"""The paper's claims checked on the state track: each a verdict with its evidence, typed.

`prose.py` renders them; tests assert on the verdicts and the numbers, not on the prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from habc_benchmark.report.model import Report, TrackResults
from habc_benchmark.stages import SFT
from habc_benchmark.stats import Summary, two_proportion_z

MIN_SUCCESSES_FOR_LENGTH = 5  # fewer successful trials per arm: a length mean is anecdote
Z_SIGNIFICANT = 1.96


class Verdict(Enum):
    HELD = "held"
    NOT_SIGNIFICANT = "same direction, not significant"
    NOT_REPRODUCED = "did not reproduce"
    NO_SUCCESS_EITHER_ARM = "not testable: no success in either arm"
    NO_SUCCESSFUL_TRIAL = "not testable: no successful trial in at least one arm"
    SFT_NEVER_SUCCEEDS = "not testable: SFT never succeeds"
    TOO_FEW_SUCCESSES = "too few successes to tell"


class ClaimId(Enum):
    IMPROVES_ON_SFT = "HABC improves on SFT"
    BEATS_HABC_V = "HABC > HABC-V in success"
    HABC_V_BEATS_BASELINES = "HABC-V > every non-HABC baseline"
    CREDIT_BEATS_NAIVE = "Intervention-aware credit > naive credit (HABC vs its ablation)"
    SHORTER_TRAJECTORIES = "HABC shortens successful trajectories vs HABC-V"
    IR_HELPS_LATER = "Intervention reweighting helps in later rounds (HABC+IR > HABC)"
    DAGGER_FALLS_BELOW_SFT = "Imit-DAgger can fall below SFT"


@dataclass(frozen=True)
class RateComparison:
    """Two cells' pooled success rates and the z of their difference (a - b)."""

    a_method: str
    a_round: int
    a: Summary
    b_method: str
    b_round: int
    b: Summary

    @property
    def z(self) -> float:
        return two_proportion_z(self.a.successes, self.a.n, self.b.successes, self.b.n)


@dataclass(frozen=True)
class LengthComparison:
    """HABC's and HABC-V's successful-trajectory lengths at round `round_index`."""

    round_index: int
    habc: Summary
    habc_v: Summary

    @property
    def shorter_by(self) -> float | None:
        a, b = self.habc.len_mean, self.habc_v.len_mean
        return None if a is None or b is None else b - a


@dataclass(frozen=True)
class BelowSft:
    """The rounds in which Imit-DAgger is below SFT, and its lowest round against SFT."""

    rounds: tuple[int, ...]
    lowest: RateComparison


Evidence = RateComparison | LengthComparison | BelowSft


@dataclass(frozen=True)
class Claim:
    claim: ClaimId
    verdict: Verdict
    evidence: Evidence
    best_baseline: str | None = None  # HABC_V_BEATS_BASELINES: the baseline it was held to


def rate_verdict(holds: bool, z: float, both_zero: bool = False) -> Verdict:
    """Ordered as the paper says and z >= 1.96: held; ordered but closer: not significant."""
    if both_zero:
        return Verdict.NO_SUCCESS_EITHER_ARM
    if not holds:
        return Verdict.NOT_REPRODUCED
    return Verdict.HELD if z >= Z_SIGNIFICANT else Verdict.NOT_SIGNIFICANT


def _compare(td: TrackResults, a: str, ra: int, b: str, rb: int) -> RateComparison | None:
    ca, cb = td.cell(a, ra), td.cell(b, rb)
    if ca is None or cb is None:
        return None
    return RateComparison(a, ra, ca.pooled, b, rb, cb.pooled)


def _ordered(claim: ClaimId, c: RateComparison, best: str | None = None) -> Claim:
    """`a` beats `b`, as the paper says."""
    both_zero = c.a.successes == 0 and c.b.successes == 0
    return Claim(claim, rate_verdict(c.a.rate > c.b.rate, c.z, both_zero), c, best)


def _length_claim(td: TrackResults, r: int) -> Claim | None:
    h, hv = td.cell("habc", r), td.cell("habc_v", r)
    if h is None or hv is None:
        return None
    ev = LengthComparison(r, h.pooled, hv.pooled)
    d = ev.shorter_by
    if d is None:
        verdict = Verdict.NO_SUCCESSFUL_TRIAL
    elif min(h.pooled.successes, hv.pooled.successes) < MIN_SUCCESSES_FOR_LENGTH:
        verdict = Verdict.TOO_FEW_SUCCESSES
    else:
        verdict = Verdict.HELD if d > 0 else Verdict.NOT_REPRODUCED
    return Claim(ClaimId.SHORTER_TRAJECTORIES, verdict, ev)


def _dagger_claim(td: TrackResults, rounds: int) -> Claim | None:
    sft = td.sft
    dag = [(r, c) for r in range(1, rounds + 1) if (c := td.cell("imit_dagger", r)) is not None]
    if not dag or sft is None:
        return None
    below = tuple(r for r, c in dag if c.pooled.rate < sft.pooled.rate)
    worst = min(dag, key=lambda x: x[1].pooled.rate)
    lowest = RateComparison("imit_dagger", worst[0], worst[1].pooled, SFT, 0, sft.pooled)
    verdict = (
        Verdict.SFT_NEVER_SUCCEEDS
        if sft.pooled.successes == 0
        else rate_verdict(bool(below), -lowest.z)
    )
    return Claim(ClaimId.DAGGER_FALLS_BELOW_SFT, verdict, BelowSft(below, lowest))


def claims(report: Report) -> list[Claim]:
    """The paper's claims that the finished cells of the state track can check, in order."""
    td = report.tracks.get("state")
    if td is None:
        return []
    tcfg = td.config
    R = tcfg.step1_rounds
    out: list[Claim | None] = []
    if c := _compare(td, "habc", R, SFT, 0):
        out.append(_ordered(ClaimId.IMPROVES_ON_SFT, c))
    if c := _compare(td, "habc", R, "habc_v", R):
        out.append(_ordered(ClaimId.BEATS_HABC_V, c))
    base = {m: c.pooled.rate for m in ("imit_dagger", "imit_recap") if (c := td.cell(m, R))}
    if base and (c := _compare(td, "habc_v", R, best := max(base, key=base.__getitem__), R)):
        out.append(_ordered(ClaimId.HABC_V_BEATS_BASELINES, c, best))
    if c := _compare(td, "habc", R, "habc_naive", R):
        out.append(_ordered(ClaimId.CREDIT_BEATS_NAIVE, c))
    out.append(_length_claim(td, R))
    last = R + tcfg.step2_rounds
    if tcfg.step2_rounds and (c := _compare(td, "habc_ir", last, "habc", last)):
        out.append(_ordered(ClaimId.IR_HELPS_LATER, c))
    out.append(_dagger_claim(td, R))
    return [c for c in out if c is not None]
