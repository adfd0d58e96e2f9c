"""Dual-head critic (viability z_v, efficiency V_e) and the parent distributional value head."""

from __future__ import annotations

import torch
from torch import nn

from habc_trainer.models.config import ModelConfig
from habc_trainer.models.encoders import ObsEncoder, activation, mlp


class DualHeadCritic(nn.Module):
    """Shared backbone phi(s) with a viability head f_v and an efficiency head f_e (spec §3)."""

    def __init__(self, cfg: ModelConfig, t_max: float):
        super().__init__()
        if t_max <= 0:
            raise ValueError(f"t_max must be > 0, got {t_max}")
        self.t_max = float(t_max)
        self.encoder = ObsEncoder(cfg)
        d_in = self.encoder.n_tokens * cfg.d_model
        self.backbone = mlp(
            d_in, cfg.critic_hidden, cfg.critic_hidden, cfg.critic_layers - 1, cfg.activation
        )
        self.act = activation(cfg.activation)
        self.f_v = nn.Linear(cfg.critic_hidden, 1)
        self.f_e = nn.Linear(cfg.critic_hidden, 1)

    def forward(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepared obs -> (z_v (B,) viability logit, v_e (B,) in (-T_max, 0)).

        V_e = -T_max * sigmoid(raw): the head cannot leave [-T_max, 0], the range of the
        steps-to-success it estimates, and its scale matches T_max without a huge output layer.
        """
        phi = self.act(self.backbone(self.encoder(obs).flatten(1)))
        z_v = self.f_v(phi).squeeze(-1)
        v_e = -self.t_max * torch.sigmoid(self.f_e(phi).squeeze(-1))
        return z_v, v_e


class ParentValueHead(nn.Module):
    """V_psi: logits over ``value_bins`` evenly spaced values in [v_min, v_max] (App. A)."""

    def __init__(self, cfg: ModelConfig, v_min: float, v_max: float):
        super().__init__()
        if not v_min < v_max:
            raise ValueError(f"value range must have v_min < v_max, got [{v_min}, {v_max}]")
        self.encoder = ObsEncoder(cfg)
        d_in = self.encoder.n_tokens * cfg.d_model
        self.net = mlp(d_in, cfg.critic_hidden, cfg.value_bins, cfg.critic_layers, cfg.activation)
        self.register_buffer(
            "support", torch.linspace(v_min, v_max, cfg.value_bins), persistent=False
        )

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Prepared obs -> (B, bins) logits."""
        return self.net(self.encoder(obs).flatten(1))

    def expected(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, bins) logits -> (B,) expected value."""
        return (logits.softmax(-1) * self.support).sum(-1)

    def two_hot(self, y: torch.Tensor) -> torch.Tensor:
        """(B,) scalar targets -> (B, bins) two-hot distribution on the support (clamped)."""
        s = self.support
        y = y.clamp(float(s[0]), float(s[-1]))
        pos = (y - s[0]) / (s[1] - s[0])
        lo = pos.floor().long().clamp(0, s.numel() - 1)
        hi = (lo + 1).clamp(max=s.numel() - 1)
        frac = pos - lo.float()
        out = torch.zeros(y.shape[0], s.numel(), device=y.device)
        out.scatter_add_(1, lo[:, None], (1 - frac)[:, None])
        out.scatter_add_(1, hi[:, None], frac[:, None])
        return out
