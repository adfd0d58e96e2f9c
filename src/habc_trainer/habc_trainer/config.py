"""Training configuration: one frozen dataclass, loaded from YAML with strict key checking."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from habc_core.cli import coerce_fields
from habc_trainer.methods import METHODS, MethodConfig, method_preset
from habc_trainer.models.config import MODEL_PRESETS, ModelConfig, model_preset


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training round needs; constants of spec §8 are the defaults."""

    method: str = "habc"
    model_preset: str = "sim"
    model_overrides: dict = dataclasses.field(default_factory=dict)  # ModelConfig fields
    batch_mix: tuple[float, float, float] | None = None  # None: the method's default
    # intervention_aware | naive; None: the method's default (naive for imit_recap, habc_naive)
    credit_assignment: str | None = None
    batch_size: int = 256
    steps_per_round: int = 6000
    lr_actor: float = 3e-4
    lr_critic: float = 3e-4
    lr_value: float = 3e-4
    lr_warmup_steps: int = 100  # linear LR warmup at the start of each round
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    warmup_steps: int = 500  # N_wu: g_t = 1 for the first N_wu steps of a round
    # Critic-only steps (V_psi and the dual-head critic, no actor) at the start of each round of
    # a gated method, so no gate comes from a critic that has not seen the round's data (the
    # paper starts each round from a pretrained critic). 0 = none.
    critic_pretrain_steps: int = 0
    huber_delta: float = 1.0
    gamma: float = 0.99
    failure_penalty: float = 100.0  # C
    t_max: float = 600.0  # T_max in control steps (V_e in [-T_max, 0])
    value_min: float | None = None  # parent value support; None: -(t_max + failure_penalty)
    value_max: float = 0.0
    weight_eps: float = 1e-3  # epsilon of Eq. 8
    stale_cutoff: int = 10000  # model indices (spec §8)
    ir_start_round: int = 1  # IR only from this round on (habc_ir)
    recap_pass_rate: float = 0.25  # Imit-Recap: epsilon passes this share of held-out data
    recap_epsilon: float | None = None  # fixed epsilon; None: picked on held-out rollouts
    recap_epsilon_every: int = 250  # steps between epsilon re-picks
    recap_heldout_batch: int = 1024
    checkpoint_every: int = 1000
    log_every: int = 50
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 0  # torch CPU threads; 0 = leave torch's default
    convert_workers: int = 0  # threads converting the round's new bags; 0 = one per core

    def __post_init__(self) -> None:
        # Types first (YAML's `true` is not 1, `5.7` steps is not 5, `1e-3` is a float): the
        # range checks below then compare numbers, and every error names its key.
        coerce_fields(self)
        if self.method not in METHODS:
            raise ValueError(f"method: unknown method {self.method!r}; valid: {sorted(METHODS)}")
        if self.model_preset not in MODEL_PRESETS:
            raise ValueError(
                f"model_preset: unknown preset {self.model_preset!r}; "
                f"valid: {sorted(MODEL_PRESETS)}"
            )
        valid_model = {f.name for f in fields(ModelConfig)}
        bad = sorted(set(self.model_overrides) - valid_model)
        if bad:
            raise ValueError(f"model_overrides: unknown keys {bad}; valid: {sorted(valid_model)}")
        positive_int = (
            "batch_size",
            "steps_per_round",
            "checkpoint_every",
            "log_every",
            "recap_epsilon_every",
            "recap_heldout_batch",
        )
        for name in positive_int:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "lr_actor",
            "lr_critic",
            "lr_value",
            "huber_delta",
            "t_max",
            "weight_eps",
            "grad_clip",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "lr_warmup_steps",
            "warmup_steps",
            "critic_pretrain_steps",
            "stale_cutoff",
            "ir_start_round",
            "weight_decay",
            "failure_penalty",
            "num_threads",
            "convert_workers",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 < self.recap_pass_rate <= 1.0:
            raise ValueError(f"recap_pass_rate must be in (0, 1], got {self.recap_pass_rate}")
        if self.value_min is not None and not self.value_min < self.value_max:
            raise ValueError(
                f"value_min must be < value_max ({self.value_max}), got {self.value_min}"
            )
        if self.batch_mix is not None:
            object.__setattr__(self, "batch_mix", tuple(float(x) for x in self.batch_mix))
        self.method_config()  # validates the overrides (batch_mix, credit_assignment)
        try:  # model_overrides' values too, now rather than when a round builds the model
            self.model_config()
        except ValueError as exc:
            raise ValueError(f"model_overrides: {exc}") from None

    def method_config(self) -> MethodConfig:
        overrides: dict[str, Any] = {}
        if self.batch_mix is not None:
            overrides["batch_mix"] = self.batch_mix
        if self.credit_assignment is not None:
            overrides["credit_assignment"] = self.credit_assignment
        return method_preset(self.method, **overrides)

    def model_config(self) -> ModelConfig:
        """The preset with overrides applied (data dims still unset)."""
        ov = dict(self.model_overrides)
        for key in ("cameras", "conv_channels"):
            if key in ov:
                ov[key] = tuple(ov[key])
        return dataclasses.replace(model_preset(self.model_preset), **ov)

    @property
    def value_range(self) -> tuple[float, float]:
        lo = self.value_min if self.value_min is not None else -(self.t_max + self.failure_penalty)
        return lo, self.value_max

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["batch_mix"] is not None:
            d["batch_mix"] = list(d["batch_mix"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        valid = {f.name for f in fields(cls)}
        for key in d:
            if key not in valid:
                raise ValueError(f"unknown config key {key!r}; valid keys: {sorted(valid)}")
        return cls(**d)  # __post_init__ checks and converts the values' types

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> TrainConfig:
        d = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a mapping of config keys, got {type(d).__name__}")
        d.update(overrides)
        return cls.from_dict(d)
