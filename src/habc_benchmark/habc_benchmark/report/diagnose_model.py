"""results.json's "diagnose" part (diagnose_section.collect) as frozen dataclasses: what the
diagnostic's section of results.md is rendered from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ArmResult:
    """One arm's round-1 success pooled over the seeds it finished, z against SFT on them."""

    successes: int
    n: int
    rate: float
    ci_low: float
    ci_high: float
    z_vs_sft: float | None

    @staticmethod
    def from_dict(a: Mapping[str, Any]) -> ArmResult:
        return ArmResult(
            a["successes"], a["n"], a["rate"], a["ci_low"], a["ci_high"], a.get("z_vs_sft")
        )


@dataclass(frozen=True)
class StreamLoss:
    """SFT's flow-matching loss on one stream: mean and min / max over seeds (None: empty)."""

    windows: int
    mean: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class RecoveryResult:
    """The operator on round 1's rollouts, summed over seeds (diagnose.Recovery)."""

    rollouts: int
    autonomous_success: int
    autonomous_failure: int
    taken_over: int
    taken_over_success: int
    rate: float | None
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Jitter:
    samples: int
    median_mm_mean: float


@dataclass(frozen=True)
class Analysis:
    seeds: tuple[int, ...]
    windows: int  # windows drawn per stream and seed (the first analysed seed's)
    loss: Mapping[str, StreamLoss]
    recovery: RecoveryResult
    jitter: Mapping[str, Jitter]


@dataclass(frozen=True)
class DiagnoseResults:
    enabled: bool
    seeds: tuple[int, ...]
    arms: Mapping[str, ArmResult | None]  # "sft" and each arm; None: pending
    analysis: Analysis | None  # None: pending
    same_rollouts_checked: bool  # some seed had two methods' round-1 rollouts to compare
    differ: Mapping[str, tuple[str, ...]]  # seed -> methods whose round-1 rollouts differ
    filtered_bc_windows: Mapping[str, int]  # seed -> filtered BC's successful policy windows

    @staticmethod
    def from_dict(d: Mapping[str, Any] | None) -> DiagnoseResults:
        if not d or not d.get("enabled"):
            return DiagnoseResults(
                False, tuple(d.get("seeds", ()) if d else ()), {}, None, False, {}, {}
            )
        an = d.get("analysis")
        analysis = None
        if an is not None:
            rc = an["recovery"]
            analysis = Analysis(
                seeds=tuple(an["seeds"]),
                windows=d["per_seed"][str(an["seeds"][0])]["windows"],
                loss={
                    name: StreamLoss(row["windows"], row["mean"], row["min"], row["max"])
                    for name, row in an["loss"].items()
                },
                recovery=RecoveryResult(
                    rc["rollouts"],
                    rc["autonomous_success"],
                    rc["autonomous_failure"],
                    rc["taken_over"],
                    rc["taken_over_success"],
                    rc["rate"],
                    rc["ci_low"],
                    rc["ci_high"],
                ),
                jitter={
                    src: Jitter(j["samples"], j["median_mm_mean"])
                    for src, j in an["jitter"].items()
                },
            )
        same = d.get("same_rollouts") or {}
        return DiagnoseResults(
            enabled=True,
            seeds=tuple(d["seeds"]),
            arms={k: None if a is None else ArmResult.from_dict(a) for k, a in d["arms"].items()},
            analysis=analysis,
            same_rollouts_checked=bool(same),
            differ={s: tuple(c["differ"]) for s, c in same.items() if c["differ"]},
            filtered_bc_windows=dict(d.get("filtered_bc_windows") or {}),
        )
