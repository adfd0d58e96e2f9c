"""Flow-matching maths shared by every flow actor (one copy, stateless).

Conventions follow openpi's pi0: ``x_sigma = sigma * noise + (1 - sigma) * actions`` so sigma = 1
is pure noise and sigma = 0 the data; the velocity target is ``u = noise - actions``; inference
integrates from sigma = 1 to 0 with a fixed number of Euler steps.

The noise may be correlated along the chunk's time axis (``temporal_noise_factor``): flow
matching transports any source distribution, and whatever noise the learned field leaves in a
sample then stays smooth instead of zig-zagging from step to step (docs/trainer.md, "Smooth
chunks").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# openpi keeps sigma away from exactly 0 so the velocity target is never degenerate there.
SIGMA_MIN = 1e-3


def sample_time(
    batch: int,
    generator: torch.Generator,
    alpha: float = 1.5,
    beta: float = 1.0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Flow time sigma ~ Beta(alpha, beta), scaled into [SIGMA_MIN, 1]. Returns (B,) float32.

    Sampled with an explicit generator (on the generator's own device, then moved) so training
    is reproducible and resumable on any device (torch.distributions takes no generator).
    """
    gdev = generator.device
    if beta == 1.0:
        # Beta(a, 1) has CDF s**a: invert it directly (the openpi default takes this path).
        s = torch.rand(batch, generator=generator, device=gdev).pow(1.0 / alpha)
    else:
        x = _sample_gamma(alpha, batch, generator, gdev)
        y = _sample_gamma(beta, batch, generator, gdev)
        s = x / (x + y)
    return (s * (1.0 - SIGMA_MIN) + SIGMA_MIN).to(device)


def _sample_gamma(
    conc: float, n: int, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """Gamma(conc, 1) samples via Marsaglia-Tsang with a boost for conc < 1. Returns (n,)."""
    boost = conc < 1.0
    d = (conc + 1.0 if boost else conc) - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    out = torch.empty(n, device=device)
    filled = torch.zeros(n, dtype=torch.bool, device=device)
    while not bool(filled.all()):
        z = torch.randn(n, generator=generator, device=device)
        u = torch.rand(n, generator=generator, device=device)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (
            torch.log(u.clamp_min(1e-30))
            < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-30))
        )
        take = ok & ~filled
        out[take] = (d * v)[take]
        filled |= take
    if boost:
        u = torch.rand(n, generator=generator, device=device)
        out = out * u.clamp_min(1e-30) ** (1.0 / conc)
    return out


def temporal_noise_factor(horizon: int, length_scale: float) -> torch.Tensor | None:
    """(H, H) L with L @ L.T = K, the squared-exponential kernel over chunk steps; None = iid.

    K[i, j] = exp(-(i - j)^2 / (2 l^2)) keeps every step's marginal a unit normal. The factor
    comes from K's eigendecomposition with negative round-off clipped, not a jittered Cholesky,
    whose jitter would put back an iid floor.
    """
    if length_scale < 0:
        raise ValueError(f"length_scale must be >= 0, got {length_scale}")
    if length_scale == 0:
        return None
    t = torch.arange(horizon, dtype=torch.float64)
    k = torch.exp(-((t[:, None] - t[None, :]) ** 2) / (2.0 * length_scale**2))
    evals, evecs = torch.linalg.eigh(k)
    return (evecs * evals.clamp_min(0.0).sqrt()).float()


def low_pass_projector(horizon: int, basis: int) -> torch.Tensor | None:
    """(H, H) orthogonal projector onto the first `basis` DCT-II vectors over H steps; None = off.

    Applied to the action head's output along time, it keeps what demonstrations contain
    (smooth segments; 16 of 50 vectors reconstruct held-out demo chunks to 0.7 mm RMS) and drops
    the step-to-step zig-zag a per-token linear head otherwise leaves in every chunk.
    """
    if basis < 0:
        raise ValueError(f"basis must be >= 0, got {basis}")
    if basis == 0 or basis >= horizon:
        return None
    n = torch.arange(horizon, dtype=torch.float64)
    b = torch.cos(torch.pi * (n[:, None] + 0.5) * torch.arange(basis)[None, :] / horizon)
    b = b / b.norm(dim=0)
    return (b @ b.T).float()


def sample_noise(
    shape: tuple[int, int, int],
    generator: torch.Generator | None,
    factor: torch.Tensor | None,
    device: torch.device | str,
) -> torch.Tensor:
    """(B, H, D) unit-marginal source noise; correlated over H when `factor` (H, H) is given."""
    gdev = device if generator is None else generator.device
    z = torch.randn(shape, generator=generator, device=gdev).to(device)
    return z if factor is None else factor.to(device) @ z


def noisy_actions(
    actions: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolate data and noise at time sigma.

    actions, noise: (B, H, D); sigma: (B,).
    Returns (x_sigma (B, H, D), target velocity u (B, H, D)).
    """
    s = sigma[:, None, None]
    return s * noise + (1.0 - s) * actions, noise - actions


def euler_integrate(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    num_steps: int,
) -> torch.Tensor:
    """Integrate dx/dsigma = v(x, sigma) from sigma = 1 (noise) to 0 with ``num_steps`` steps.

    velocity(x (B, H, D), sigma (B,)) -> (B, H, D). Returns the sample at sigma = 0, (B, H, D).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    dt = -1.0 / num_steps
    x = noise
    for k in range(num_steps):
        sigma = torch.full((x.shape[0],), 1.0 + k * dt, device=x.device, dtype=x.dtype)
        x = x + dt * velocity(x, sigma)
    return x


def prefix_weights(horizon: int, prefix_len: int, frozen: int) -> torch.Tensor:
    """(H,) guidance weights of real-time chunking (Black et al. 2025, eq. 5).

    Rows that will surely run before the chunk lands (`frozen`) weigh 1, the rest of the running
    chunk's prefix decays exponentially to 0 at its end, rows past the prefix are free.
    """
    if not (0 <= frozen <= prefix_len <= horizon):
        raise ValueError(
            f"prefix: expected 0 <= frozen ({frozen}) <= prefix_len ({prefix_len}) <= "
            f"horizon ({horizon})"
        )
    i = torch.arange(horizon, dtype=torch.float64)
    c = (prefix_len - i) / (prefix_len - frozen + 1)
    soft = c * torch.expm1(c) / (torch.e - 1.0)
    w = torch.where(i < frozen, torch.ones_like(i), torch.where(i < prefix_len, soft, 0.0 * i))
    return w.float()


def guided_euler_integrate(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    num_steps: int,
    target: torch.Tensor,
    weights: torch.Tensor,
    max_guidance: float = 5.0,
    projector: torch.Tensor | None = None,
) -> torch.Tensor:
    """`euler_integrate` inpainting the chunk on `target` (real-time chunking's guidance).

    At each step the clean chunk the velocity predicts, a_hat = x - sigma * v, is pulled toward
    `target` (B, H, D) where `weights` (H,) say, through the vector-Jacobian product of a_hat
    with respect to x (Pokle et al.'s PiGDM guidance, as Black et al. use it), with the guidance
    weight clipped at `max_guidance`. `projector` (H, H), the actor's low-pass output projector,
    keeps the guidance in the chunk space the actor produces: unprojected, the gradient back
    through the per-patch input layer adds a zig-zag the denoiser never removes (several times the
    in-chunk second difference of a free chunk; bench/bench_chunks.py prints it). Needs gradients
    through `velocity`; returns (B, H, D).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    dt = -1.0 / num_steps
    w = weights.to(noise)[None, :, None]
    x = noise
    for k in range(num_steps):
        s = 1.0 + k * dt
        sigma = torch.full((x.shape[0],), s, device=x.device, dtype=x.dtype)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            v = velocity(xg, sigma)
            a_hat = xg - s * v
            (g,) = torch.autograd.grad(a_hat, xg, grad_outputs=(target - a_hat.detach()) * w)
        if projector is not None:
            g = projector @ g
        # In data time tau = 1 - sigma: weight min(beta, (1 - tau) / (tau r^2)), r^2 the
        # posterior variance (1 - tau)^2 / (tau^2 + (1 - tau)^2); infinite (clipped) at the noise.
        r2 = s * s / ((1.0 - s) ** 2 + s * s)
        c = max_guidance if s >= 1.0 else min(max_guidance, s / ((1.0 - s) * r2))
        x = x + dt * (v.detach() - c * g)
    return x.detach()


def masked_squared_error(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Per-sample mean squared error over the masked elements (reduction="none").

    pred, target: (B, H, D); mask: (B, H, D) bool. Returns (B,); a sample with no masked element
    gets 0 so it can never contribute gradient.
    """
    m = mask.to(pred.dtype)
    se = (pred - target).pow(2) * m
    return se.sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp_min(1.0)
