"""Observation encoders: per-camera CNN, task-prompt, proprio and env_state -> tokens."""

from __future__ import annotations

import math

import torch
from torch import nn

from habc_core import features as F
from habc_trainer.models.config import ModelConfig


def activation(name: str) -> nn.Module:
    return {"gelu": nn.GELU, "relu": nn.ReLU}[name]()


def mlp(d_in: int, hidden: int, d_out: int, layers: int, act: str = "gelu") -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` with activation ``act``, then a linear."""
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), activation(act)]
        d = hidden
    mods.append(nn.Linear(d, d_out))
    return nn.Sequential(*mods)


class ImageEncoder(nn.Module):
    """Small strided CNN + global average pool: (B, 3, h, w) in [0, 1] -> (B, d)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.size = cfg.image_size
        layers: list[nn.Module] = []
        c = 3
        for ch in cfg.conv_channels:
            layers += [
                nn.Conv2d(c, ch, 3, stride=2, padding=1),
                nn.GroupNorm(1, ch),
                activation(cfg.activation),
            ]
            c = ch
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Linear(c, cfg.d_model)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[-2:] != (self.size, self.size):
            img = nn.functional.interpolate(img, size=(self.size, self.size), mode="area")
        return self.proj(self.conv(img * 2.0 - 1.0).mean(dim=(2, 3)))


class PromptEncoder(nn.Module):
    """Mean of hashed-word embeddings: (B, L) int64 (0 = pad) -> (B, d)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m = (tokens > 0).float()
        return (self.emb(tokens) * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1.0)


class ObsEncoder(nn.Module):
    """Prepared observation dict (models.inputs.prepare_obs) -> (B, n_tokens, d) tokens."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.check_dims()
        self.cfg = cfg
        self.proprio = mlp(cfg.proprio_dim, cfg.d_model, cfg.d_model, 1, cfg.activation)
        self.env_state = (
            mlp(cfg.env_state_dim, cfg.d_model, cfg.d_model, 1, cfg.activation)
            if cfg.env_state_dim
            else None
        )
        # One CNN per camera: wrist and top views look nothing alike.
        self.cameras = nn.ModuleDict({c: ImageEncoder(cfg) for c in cfg.cameras})
        self.prompt = PromptEncoder(cfg)
        self.type_emb = nn.Parameter(torch.zeros(self.n_tokens, cfg.d_model))
        nn.init.normal_(self.type_emb, std=0.02)

    @property
    def n_tokens(self) -> int:
        return 2 + (1 if self.cfg.env_state_dim else 0) + len(self.cfg.cameras)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        toks = [self.proprio(obs[F.PROPRIO]), self.prompt(obs[F.TASK])]
        if self.env_state is not None:
            toks.append(self.env_state(obs[F.ENV_STATE]))
        for cam, enc in self.cameras.items():
            toks.append(enc(obs[F.image_key(cam)]))
        return torch.stack(toks, dim=1) + self.type_emb


def sinusoidal(t: torch.Tensor, dim: int, max_period: float = 100.0) -> torch.Tensor:
    """(B,) in [0, 1] -> (B, dim) sin/cos features (openpi's posemb_sincos, period 4e-3..4)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    ang = t[:, None] * freqs[None] * 2 * math.pi * 10.0
    return torch.cat([ang.sin(), ang.cos()], dim=-1)
