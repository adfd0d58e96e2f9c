"""The six compared methods (+ the naive-credit ablation and the diagnostic's filtered BC) as
data, not as copied loops."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

GateKind = Literal["none", "habc", "viability", "recap", "success"]
CreditKind = Literal["intervention_aware", "naive"]
GATES: tuple[str, ...] = ("none", "habc", "viability", "recap", "success")
CREDITS: tuple[str, ...] = ("intervention_aware", "naive")  # = credit.CREDIT_MODES


@dataclass(frozen=True)
class MethodConfig:
    """How one method draws its batch and weights its actor samples (spec §4, §7).

    batch_mix: fractions of the batch drawn from (D_SFT, D_int, D_auto); a stream that is empty
    gives its share to the others in proportion.
    """

    name: str
    batch_mix: tuple[float, float, float]
    gate: GateKind
    intervention_reweighting: bool = False  # IR: g_t on intervention windows
    normalize: bool = True  # unit-mean normalise non-SFT weights (Eq. 8)
    # Which labels the store's credit assignment (credit.assign_credit) produces for this method.
    credit_assignment: CreditKind = "intervention_aware"
    train_critic: bool = True  # dual-head critic (needed by the HABC gates)

    def __post_init__(self) -> None:
        if (
            len(self.batch_mix) != 3
            or any(f < 0 for f in self.batch_mix)
            or sum(self.batch_mix) <= 0
        ):
            raise ValueError(
                f"batch_mix must be 3 non-negative fractions with a positive sum, "
                f"got {self.batch_mix}"
            )
        if self.gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {self.gate!r}")
        if self.credit_assignment not in CREDITS:
            raise ValueError(
                f"credit_assignment must be one of {CREDITS}, got {self.credit_assignment!r}"
            )
        if self.intervention_reweighting and self.gate not in ("habc", "viability"):
            raise ValueError(
                f"intervention_reweighting needs an HABC gate, got gate={self.gate!r}"
            )

    @property
    def uses_rollouts(self) -> bool:
        return self.batch_mix[2] > 0


_HABC_MIX = (0.25, 0.25, 0.5)  # [choice] spec §5 leaves the mixing ratios to config

METHODS: dict[str, MethodConfig] = {
    "sft": MethodConfig("sft", (1.0, 0.0, 0.0), "none", normalize=False, train_critic=False),
    "imit_dagger": MethodConfig(
        "imit_dagger", (0.5, 0.5, 0.0), "none", normalize=False, train_critic=False
    ),
    "imit_recap": MethodConfig(
        "imit_recap",
        _HABC_MIX,
        "recap",
        normalize=False,
        credit_assignment="naive",
        train_critic=False,
    ),
    "habc_v": MethodConfig("habc_v", _HABC_MIX, "viability"),
    "habc": MethodConfig("habc", _HABC_MIX, "habc"),
    "habc_ir": MethodConfig("habc_ir", _HABC_MIX, "habc", intervention_reweighting=True),
    "habc_naive": MethodConfig("habc_naive", _HABC_MIX, "habc", credit_assignment="naive"),
    # Diagnostic arm (habc-benchmark --diagnose): imitate the policy's own successes, demos and
    # rollouts 50/50, no critic. Gate "success" = weights.success_filter; the benchmark draws
    # its D_auto from diagnostics.success_only, so every rollout sample in the batch is kept.
    "filtered_bc": MethodConfig(
        "filtered_bc", (0.5, 0.0, 0.5), "success", normalize=False, train_critic=False
    ),
}


def method_preset(name: str, **overrides) -> MethodConfig:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {sorted(METHODS)}")
    return dataclasses.replace(METHODS[name], **overrides) if overrides else METHODS[name]
