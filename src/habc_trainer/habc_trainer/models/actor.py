"""Flow-matching action-chunk actor: the pure nn.Module holding the maths (stand-in for pi0.5).

Observation tokens (cameras, prompt, proprio, env_state) and a flow-time token condition a
transformer "action expert" over chunk tokens; each token covers ``action_patch`` chunk steps.
"""

from __future__ import annotations

import torch
from torch import nn

from habc_trainer import flow_matching as fm
from habc_trainer.models.config import ModelConfig
from habc_trainer.models.encoders import ObsEncoder, activation, mlp, sinusoidal


class Block(nn.Module):
    """Pre-norm transformer block with explicit-matmul attention.

    Sequences here are short (about 10 tokens): two batched matmuls beat the fused CPU attention
    kernel, whose per-(batch, head) overhead dominated a training step at batch 256.
    """

    def __init__(self, d: int, n_heads: int, ff_mult: int, act: str = "gelu"):
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff = nn.Sequential(
            nn.Linear(d, ff_mult * d), activation(act), nn.Linear(ff_mult * d, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, d) -> (B, N, d)."""
        b, n, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * (d // h) ** -0.5  # (B, h, N, N)
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(y)
        return x + self.ff(self.norm2(x))


class FlowActor(nn.Module):
    """v_theta(s, x_sigma, sigma): the flow-matching velocity over normalised action chunks."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.check_dims()
        self.cfg = cfg
        d = cfg.d_model
        self.n_act_tokens = cfg.horizon // cfg.action_patch
        self.obs_encoder = ObsEncoder(cfg)
        self.time_mlp = mlp(d, d, d, 1, cfg.activation)
        self.action_in = nn.Linear(cfg.action_patch * cfg.action_dim, d)
        self.action_pos = nn.Parameter(torch.randn(self.n_act_tokens, d) * 0.02)
        self.expert = nn.Sequential(
            *[Block(d, cfg.n_heads, cfg.ff_mult, cfg.activation) for _ in range(cfg.n_layers)]
        )
        self.out_norm = nn.LayerNorm(d)
        self.action_out = nn.Linear(d, cfg.action_patch * cfg.action_dim)
        # The ideal velocity is (x_sigma - a_hat) / sigma: full rank in x_sigma. A token of
        # d_model dims cannot carry an action patch wider than that, so without this pass-through
        # the noise is never fully removed and sampled chunks stay noisy. A positive scale of
        # sigma lets the network learn the 1/sigma part; the tokens predict the rest.
        self.skip_scale = mlp(d, d, 1, 1, cfg.activation)
        factor = fm.temporal_noise_factor(cfg.horizon, cfg.noise_length_scale)
        # Not persistent: a function of the config, so checkpoints keep the same tensors.
        self.register_buffer("noise_factor", factor, persistent=False)
        self.register_buffer(
            "out_projector", fm.low_pass_projector(cfg.horizon, cfg.action_basis), persistent=False
        )

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Prepared obs -> (B, n_obs_tokens, d) conditioning tokens (reused across Euler steps)."""
        return self.obs_encoder(obs)

    def velocity(self, cond: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """cond (B, n, d), x (B, H, D) normalised noisy chunk, sigma (B,) -> velocity (B, H, D)."""
        b = x.shape[0]
        cfg = self.cfg
        patches = x.reshape(b, self.n_act_tokens, cfg.action_patch * cfg.action_dim)
        act = self.action_in(patches) + self.action_pos
        emb = sinusoidal(sigma, cfg.d_model)
        t_tok = self.time_mlp(emb)[:, None]
        h = self.expert(torch.cat([cond, t_tok, act], dim=1))
        out = self.action_out(self.out_norm(h[:, -self.n_act_tokens :]))
        skip = nn.functional.softplus(self.skip_scale(emb))[:, :, None]  # (B, 1, 1)
        out = out.reshape(b, cfg.horizon, cfg.action_dim)
        if self.out_projector is not None:
            out = self.out_projector @ out
        return out + skip * x

    def flow_loss(
        self,
        obs: dict[str, torch.Tensor],
        actions: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Per-sample flow-matching loss (reduction="none").

        actions: (B, H, D) normalised; mask: (B, H, D) bool. Returns (B,).
        """
        b = actions.shape[0]
        sigma = fm.sample_time(
            b, generator, self.cfg.time_alpha, self.cfg.time_beta, actions.device
        )
        noise = fm.sample_noise(actions.shape, generator, self.noise_factor, actions.device)
        x, u = fm.noisy_actions(actions, noise, sigma)
        v = self.velocity(self.encode(obs), x, sigma)
        return fm.masked_squared_error(v, u, mask)

    def _start(
        self, obs: dict[str, torch.Tensor], generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditioning tokens, source noise (B, H, D)): where every sampler starts."""
        cond = self.encode(obs)
        shape = (cond.shape[0], self.cfg.horizon, self.cfg.action_dim)
        return cond, fm.sample_noise(shape, generator, self.noise_factor, cond.device)

    @torch.no_grad()
    def sample(
        self,
        obs: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
    ) -> torch.Tensor:
        """Prepared obs -> (B, H, D) normalised action chunk by Euler integration."""
        cond, noise = self._start(obs, generator)
        return fm.euler_integrate(
            lambda x, s: self.velocity(cond, x, s),
            noise,
            num_steps or self.cfg.num_inference_steps,
        )

    def sample_inpainted(
        self,
        obs: dict[str, torch.Tensor],
        target: torch.Tensor,
        weights: torch.Tensor,
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
    ) -> torch.Tensor:
        """`sample` guided toward `target` (B, H, D) normalised where `weights` (H,) say
        (real-time chunking: the running chunk's rows still to come)."""
        with torch.no_grad():
            cond, noise = self._start(obs, generator)
        return fm.guided_euler_integrate(
            lambda x, s: self.velocity(cond, x, s),
            noise,
            num_steps or self.cfg.num_inference_steps,
            target,
            weights,
            projector=self.out_projector,
        )
