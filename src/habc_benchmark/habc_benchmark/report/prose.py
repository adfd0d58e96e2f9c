"""The report's sentences: claims with their verdicts, and the matched-seed comparisons, each
rendered from its typed value (claims.py, comparisons.py)."""

from __future__ import annotations

from habc_benchmark.report.claims import (
    MIN_SUCCESSES_FOR_LENGTH,
    BelowSft,
    Claim,
    ClaimId,
    LengthComparison,
    RateComparison,
    Verdict,
)
from habc_benchmark.report.comparisons import (
    AblationReading,
    ControlReading,
    Versus,
    VersusSftReading,
)
from habc_benchmark.report.labels import label, pct
from habc_benchmark.stages import SFT_CONTINUED

VERDICT_TEXT = {
    Verdict.HELD: "**held**",
    Verdict.NOT_SIGNIFICANT: "**same direction, not significant** (|z| < 1.96)",
    Verdict.NOT_REPRODUCED: "**did not reproduce**",
    Verdict.NO_SUCCESS_EITHER_ARM: "**not testable here** (no success in either arm)",
    Verdict.NO_SUCCESSFUL_TRIAL: "**not testable here** (no successful trial in at least one arm)",
    Verdict.SFT_NEVER_SUCCEEDS: "**not testable here** (SFT never succeeds)",
    Verdict.TOO_FEW_SUCCESSES: (
        f"**too few successes to tell** (< {MIN_SUCCESSES_FOR_LENGTH} in an arm)"
    ),
}


def rate_comparison(c: RateComparison) -> str:
    a, b = c.a, c.b
    return (
        f"{label(c.a_method)} r{c.a_round} {pct(a.rate)} % [{pct(a.ci_low)}, {pct(a.ci_high)}] "
        f"vs {label(c.b_method)} r{c.b_round} {pct(b.rate)} % [{pct(b.ci_low)}, "
        f"{pct(b.ci_high)}] (pooled over seeds, z = {c.z:+.2f})"
    )


def _length(c: LengthComparison) -> str:
    h, hv, r, d = c.habc, c.habc_v, c.round_index, c.shorter_by
    if d is None:
        return f"HABC r{r} {h.successes} successes, HABC-V r{r} {hv.successes}"
    return (
        f"HABC r{r} {h.len_mean:.1f} ± {h.len_std:.1f} frames vs HABC-V "
        f"{hv.len_mean:.1f} ± {hv.len_std:.1f} ({d:+.1f} frames shorter; "
        "paper: 32-162 frames shorter)"
    )


def _evidence(c: Claim) -> str:
    ev = c.evidence
    if isinstance(ev, RateComparison):
        return rate_comparison(ev)
    if isinstance(ev, LengthComparison):
        return _length(ev)
    assert isinstance(ev, BelowSft)
    return f"below SFT in rounds {list(ev.rounds) or 'none'}; lowest: " + rate_comparison(
        ev.lowest
    )


def claim_title(c: Claim) -> str:
    if c.claim is ClaimId.HABC_V_BEATS_BASELINES:
        return f"{c.claim.value} (best: {label(c.best_baseline or '')})"
    return c.claim.value


def claim_line(c: Claim) -> str:
    return f"- {claim_title(c)}: {VERDICT_TEXT[c.verdict]}. {_evidence(c)}"


def _vs_sft_tail(v: Versus) -> str:
    return f"(z = {v.z:+.1f}, {v.side.value} SFT)"


def ablation_line(a: AblationReading) -> str:
    parts = [
        f"r{v.round_index} {pct(v.arm.rate)} % vs {pct(v.other.rate)} % (z = {v.z:+.1f})"
        for v in a.rounds
    ]
    s = a.against_sft
    against = (
        ""
        if s is None
        else f" Against SFT: r{s.round_index} {pct(s.arm.rate)} % vs {pct(s.other.rate)} % "
        + _vs_sft_tail(s)
        + "."
    )
    return (
        f"- Ablation {a.name} ({label(a.base)} with `{dict(a.overrides)}`) against "
        f"{label(a.base)}: " + ", ".join(parts) + "." + against
    )


def versus_sft_line(v: VersusSftReading) -> str:
    parts = [
        f"r{x.round_index} {x.arm.successes}/{x.arm.n} = {pct(x.arm.rate)} % "
        f"vs SFT {x.other.successes}/{x.other.n} = {pct(x.other.rate)} % " + _vs_sft_tail(x)
        for x in v.rounds
    ]
    return (
        f"- {label(v.method)} against SFT on the same protocol seeds "
        f"({', '.join(map(str, v.seeds))}): " + "; ".join(parts) + "."
    )


def control_lines(c: ControlReading) -> list[str]:
    trail = ", ".join(f"r{r} {pct(rate)} %" for r, rate in c.rates)
    where = f"protocol seed{'s' * (len(c.seeds) > 1)} {', '.join(map(str, c.seeds))}"
    z = c.z
    if c.falls_below_sft:
        verdict = (
            f"it falls significantly below SFT too (z = {z:.1f}): part of every "
            "method's drop is the round procedure itself (fresh optimizer and LR warm-up "
            "for a few hundred steps), not the online data"
        )
    else:
        verdict = (
            f"it does not fall below SFT (z = {z:+.1f}): the round procedure alone does "
            "not explain the drop; the online data, and how each method weights them, do"
        )
    out = [
        f"- The control arm ({label(SFT_CONTINUED)}: the same rounds on the demonstrations "
        f"alone; {where}) reaches {trail} against SFT's {pct(c.sft.rate)} % on those seeds; "
        f"{verdict}."
    ]
    if c.round1 is not None and c.first:
        rows = [f"{label(m)} {pct(n.rate)} % (z = {c.z_vs_round1(n):+.1f})" for m, n in c.first]
        out.append(
            f"- Round 1 against the control's round 1 "
            f"({pct(c.round1.rate)} %, {where}): " + ", ".join(rows) + "."
        )
    return out
