"""Success-rate intervals and trajectory-length statistics (spec §8 evaluation)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n == 0.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes,
    which small evaluation sets hit often.
    """
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"successes: need 0 <= successes <= n, got {successes!r} of {n!r}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Clamp rounding noise so the interval always contains the point estimate.
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


@dataclass(frozen=True)
class Summary:
    """Success rate with its Wilson 95 % interval and length statistics over successes."""

    n: int
    successes: int
    rate: float
    ci_low: float
    ci_high: float
    len_mean: float | None  # mean trajectory length (action frames) over successful trials
    len_std: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def summarize(outcomes: Sequence[bool], lengths: Sequence[int]) -> Summary:
    """outcomes[i]: trial i succeeded; lengths[i]: its number of action frames."""
    if len(outcomes) != len(lengths):
        raise ValueError(f"lengths: {len(lengths)} entries for {len(outcomes)} outcomes")
    n = len(outcomes)
    k = int(sum(bool(o) for o in outcomes))
    lo, hi = wilson_interval(k, n)
    succ = [float(length) for o, length in zip(outcomes, lengths, strict=True) if o]
    mean, std = mean_std(succ)
    return Summary(n, k, k / n if n else 0.0, lo, hi, mean, std)


def mean_std(xs: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and population standard deviation; (None, None) for no values."""
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


@dataclass(frozen=True)
class SeedAggregate:
    """One cell (method, round) over protocol seeds: mean and spread of the per-seed rates,
    and the pooled Wilson interval over every trial of every seed."""

    seeds: int
    rate_mean: float
    rate_std: float
    rate_min: float
    rate_max: float
    pooled: Summary

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "pooled"}
        d["pooled"] = self.pooled.to_dict()
        return d


def aggregate(per_seed: Sequence[tuple[Sequence[bool], Sequence[int]]]) -> SeedAggregate:
    """per_seed: (outcomes, lengths) of each protocol seed's evaluation of one cell."""
    if not per_seed:
        raise ValueError("per_seed: need at least one seed")
    rates = [summarize(o, n).rate for o, n in per_seed]
    m, s = mean_std(rates)
    outcomes = [o for seed in per_seed for o in seed[0]]
    lengths = [n for seed in per_seed for n in seed[1]]
    return SeedAggregate(
        len(rates), float(m), float(s), min(rates), max(rates), summarize(outcomes, lengths)
    )


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> float:
    """z statistic of p1 - p2 (pooled variance); 0 when undefined. Used only to say how far
    apart two success rates are, not as a decision rule."""
    if n1 == 0 or n2 == 0:
        return 0.0
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return 0.0 if se == 0 else (k1 / n1 - k2 / n2) / se
