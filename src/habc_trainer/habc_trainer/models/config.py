"""Model configuration and named presets (tiny / sim / base).

One config sizes the actor, the dual-head critic and the parent value head; the data-dependent
dims (proprio, env_state, action) are filled in from the store by ``with_dims``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from habc_core.cli import coerce_fields
from habc_core.features import CAMERA_NAMES

ACTIVATIONS: tuple[str, ...] = ("gelu", "relu")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of every network. Data dims default to 0 until ``with_dims`` fills them."""

    proprio_dim: int = 0
    action_dim: int = 0
    env_state_dim: int = 0  # > 0 only in state-mode sim experiments
    cameras: tuple[str, ...] = ()  # () = no image encoder (state mode)
    image_size: int = 96  # images are resized (area) to image_size x image_size
    conv_channels: tuple[int, ...] = (16, 32)
    horizon: int = 50  # H: training chunk length
    execute_steps: int = 25  # steps of each chunk the robot executes (spec §1)
    action_patch: int = 5  # chunk steps per action-expert token (H must be divisible)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ff_mult: int = 2
    activation: str = "gelu"  # gelu | relu (relu: elementwise ops are costly on small CPUs)
    vocab_size: int = 1024  # hashed word buckets of the task prompt encoder
    max_prompt_tokens: int = 16
    critic_hidden: int = 128
    critic_layers: int = 2
    value_bins: int = 51  # parent value head V_psi: bins over [value_min, value_max]
    num_inference_steps: int = 10  # Euler steps at inference (openpi)
    time_alpha: float = 1.5  # flow time ~ Beta(time_alpha, time_beta) (openpi)
    time_beta: float = 1.0
    # Flow source noise correlated over chunk steps (squared-exponential kernel, in steps);
    # 0 = iid per step. With iid noise the sim preset's sampled chunks kept 23 mm of per-step
    # zig-zag (median EE second difference; demos 0): docs/trainer.md, "Smooth chunks".
    noise_length_scale: float = 5.0
    # The action head's output projected onto the first `action_basis` DCT vectors of the
    # chunk (0 = off): removes the zig-zag a per-token linear head leaves inside and between
    # action patches (docs/trainer.md, "Smooth chunks").
    action_basis: int = 16
    # The actor: "" = our flow actor; else a LeRobot policy directory (its config.json, as
    # LeRobot's from_pretrained reads it, and model.safetensors when it is pretrained), trained
    # through habc_trainer.models.lerobot_policy in the LeRobot venv (make lerobot-env). The
    # critic and the value head stay ours, sized by the fields above.
    lerobot: str = ""

    def __post_init__(self) -> None:
        # Types first: a checkpoint's or an override's `horizon: true` / `5.7` is refused by
        # name instead of passing the range checks as 1 or sizing a layer with a float.
        coerce_fields(self)
        for name in ("proprio_dim", "action_dim", "env_state_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in (
            "image_size",
            "horizon",
            "execute_steps",
            "action_patch",
            "d_model",
            "n_layers",
            "n_heads",
            "ff_mult",
            "vocab_size",
            "max_prompt_tokens",
            "critic_hidden",
            "critic_layers",
            "num_inference_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.value_bins < 2:
            raise ValueError(f"value_bins must be >= 2, got {self.value_bins}")
        if self.horizon % self.action_patch:
            raise ValueError(
                f"action_patch must divide horizon ({self.horizon}), got {self.action_patch}"
            )
        if self.execute_steps > self.horizon:
            raise ValueError(
                f"execute_steps must be <= horizon ({self.horizon}), got {self.execute_steps}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads must divide d_model ({self.d_model}), got {self.n_heads}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        bad = [c for c in self.cameras if c not in CAMERA_NAMES]
        if bad:
            raise ValueError(f"cameras has unknown names {bad}; valid: {list(CAMERA_NAMES)}")
        if self.action_basis < 0:
            raise ValueError(f"action_basis must be >= 0, got {self.action_basis}")
        if self.noise_length_scale < 0:
            raise ValueError(f"noise_length_scale must be >= 0, got {self.noise_length_scale}")
        if self.time_alpha <= 0 or self.time_beta <= 0:
            raise ValueError(
                f"time_alpha/time_beta must be > 0, got {self.time_alpha}/{self.time_beta}"
            )

    def with_dims(
        self,
        *,
        proprio_dim: int,
        action_dim: int,
        env_state_dim: int = 0,
        cameras: tuple[str, ...] | None = None,
    ) -> ModelConfig:
        return dataclasses.replace(
            self,
            proprio_dim=proprio_dim,
            action_dim=action_dim,
            env_state_dim=env_state_dim,
            cameras=self.cameras if cameras is None else tuple(cameras),
        )

    def check_dims(self) -> None:
        """Raise unless the data dims are filled in (a model cannot be built without them)."""
        if self.proprio_dim < 1 or self.action_dim < 1:
            raise ValueError(
                f"proprio_dim/action_dim must be set (>= 1), got {self.proprio_dim}/"
                f"{self.action_dim}; call ModelConfig.with_dims"
            )


MODEL_PRESETS: dict[str, ModelConfig] = {
    # Unit tests: seconds on CPU.
    "tiny": ModelConfig(
        horizon=10,
        execute_steps=5,
        action_patch=5,
        d_model=32,
        n_layers=1,
        n_heads=2,
        ff_mult=2,
        vocab_size=64,
        max_prompt_tokens=8,
        critic_hidden=32,
        critic_layers=1,
        value_bins=21,
        image_size=16,
        conv_channels=(8,),
        num_inference_steps=4,
        activation="relu",
    ),
    # The CPU benchmark (state mode): a few hundred k parameters, H = 50 trained / 25 executed.
    "sim": ModelConfig(
        horizon=50,
        execute_steps=25,
        action_patch=10,
        d_model=64,
        n_layers=2,
        n_heads=4,
        ff_mult=2,
        vocab_size=256,
        critic_hidden=64,
        critic_layers=2,
        image_size=64,
        conv_channels=(16, 32),
        activation="relu",
    ),
    # GPU-sized stand-in for pi0.5: three cameras, per-step action tokens.
    "base": ModelConfig(
        cameras=CAMERA_NAMES,
        image_size=128,
        conv_channels=(32, 64, 128, 256),
        horizon=50,
        execute_steps=25,
        action_patch=1,
        d_model=512,
        n_layers=8,
        n_heads=8,
        ff_mult=4,
        vocab_size=32768,
        max_prompt_tokens=48,
        critic_hidden=512,
        critic_layers=3,
        value_bins=201,
    ),
}


def model_preset(name: str) -> ModelConfig:
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}; valid: {sorted(MODEL_PRESETS)}")
    return MODEL_PRESETS[name]
