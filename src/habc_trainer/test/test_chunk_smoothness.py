"""Sampled chunks are as smooth as the data they imitate (the noise must not come back).

A small actor learns chunks that are straight ramps (second difference 0, like the scripted
demonstrations' segments). With iid per-step flow noise and a per-token head its samples
zig-zag; the default action head (temporally correlated noise, low-pass output) must not.
"""

import dataclasses

import torch

from habc_trainer import flow_matching as fm
from habc_trainer.models.actor import FlowActor
from habc_trainer.models.config import ModelConfig

torch.set_num_threads(1)
# A patch of 5 steps x 12 dims is wider than a 32-dim token, as the sim preset's 10 x 20 is
# wider than its 64: the head cannot carry per-step noise removal itself.
DIMS = 12
BASE = ModelConfig(
    horizon=20,
    execute_steps=10,
    action_patch=5,
    d_model=32,
    n_layers=1,
    n_heads=2,
    ff_mult=2,
    vocab_size=16,
    max_prompt_tokens=2,
    critic_hidden=16,
    critic_layers=1,
    value_bins=11,
    num_inference_steps=10,
    activation="relu",
).with_dims(proprio_dim=2, action_dim=DIMS)


def _ramps(n: int, gen: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """obs (start, slope) -> chunk a[h, d] = start + gain_d * slope * h / H; unit-scale data."""
    c = torch.randn((n, 2), generator=gen)
    h = torch.linspace(0.0, 1.0, BASE.horizon)
    gain = torch.linspace(-1.0, 1.0, DIMS)
    chunk = c[:, None, 0:1] + 2.0 * c[:, None, 1:2] * h[None, :, None] * gain
    obs = {"proprio": c, "task": torch.zeros((n, BASE.max_prompt_tokens), dtype=torch.long)}
    return obs, chunk


def _sample_jitter(cfg: ModelConfig) -> float:
    """Median |second difference| of sampled chunks after a short training run."""
    torch.manual_seed(0)
    actor = FlowActor(cfg)
    opt = torch.optim.Adam(actor.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        obs, chunk = _ramps(128, gen)
        mask = torch.ones_like(chunk, dtype=torch.bool)
        loss = actor.flow_loss(obs, chunk, mask, gen).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    obs, _ = _ramps(256, gen)
    x = actor.sample(obs, gen)
    return float((x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]).abs().median())


def test_default_head_samples_smooth_chunks_where_iid_noise_zig_zags():
    smooth = _sample_jitter(dataclasses.replace(BASE, noise_length_scale=5.0, action_basis=8))
    iid = _sample_jitter(dataclasses.replace(BASE, noise_length_scale=0.0, action_basis=0))
    default = ModelConfig()
    assert default.noise_length_scale > 0 and default.action_basis > 0
    # Data second differences are 0; a chunk's values span about +-3.
    print(f"median |second difference|: smooth head {smooth:.4f}, iid {iid:.4f}")
    assert smooth < 0.05, smooth
    assert iid > 5 * smooth, (iid, smooth)


def test_temporal_noise_has_unit_marginals_and_the_kernel_covariance():
    factor = fm.temporal_noise_factor(20, 5.0)
    cov = factor @ factor.T
    t = torch.arange(20.0)
    kernel = torch.exp(-((t[:, None] - t[None, :]) ** 2) / 50.0)
    assert torch.allclose(cov, kernel, atol=1e-5)
    assert fm.temporal_noise_factor(20, 0.0) is None


def test_low_pass_projector_keeps_slow_signals_and_removes_zig_zag():
    p = fm.low_pass_projector(50, 16)
    assert torch.allclose(p @ p, p, atol=1e-5) and torch.allclose(p, p.T, atol=1e-6)
    h = torch.arange(50.0)
    slow = torch.cos(torch.pi * (h + 0.5) * 3 / 50)
    zig = torch.cos(torch.pi * (h + 0.5) * 40 / 50)  # a 2.5-step oscillation
    assert torch.allclose(p @ slow, slow, atol=1e-5)
    assert float((p @ zig).norm()) < 1e-4 * float(zig.norm())
    assert fm.low_pass_projector(50, 0) is None and fm.low_pass_projector(10, 16) is None


def test_smoothing_settings_are_validated():
    for key in ("noise_length_scale", "action_basis"):
        try:
            dataclasses.replace(BASE, **{key: -1})
        except ValueError as exc:
            assert key in str(exc)
        else:
            raise AssertionError(f"{key}=-1 accepted")
