"""HABC advantages, gate and sample weights (spec §4, §7) as pure tensor functions."""

from __future__ import annotations

import torch


def gate(
    z_v: torch.Tensor,
    z_v_next: torch.Tensor,
    v_e: torch.Tensor,
    v_e_next: torch.Tensor,
    done: torch.Tensor | None = None,
) -> torch.Tensor:
    """The HABC gate (Eq. 5-7); all inputs (B,) detached head outputs, returns g (B,) in (0, 2).

    A_v = z_v(s') - z_v(s); A_e = -1 + V_e(s') - V_e(s); g = 1 + tanh((1-p_v) A_v + p_v A_e)
    with p_v = sigmoid(z_v(s)). ``done`` (d_t, optional): at a terminal success step the
    efficiency residual uses the TD target 0 instead of -1 + V_e(s') (Eq. 3), i.e.
    A_e = -V_e(s); omitted, Eq. 6 is applied literally everywhere.
    """
    a_v = z_v_next - z_v
    a_e = -1.0 + v_e_next - v_e
    if done is not None:
        a_e = torch.where(done.bool(), -v_e, a_e)
    p_v = torch.sigmoid(z_v)
    return 1.0 + torch.tanh((1.0 - p_v) * a_v + p_v * a_e)


def gate_viability(z_v: torch.Tensor, z_v_next: torch.Tensor) -> torch.Tensor:
    """HABC-V's gate with V_e ablated: g = 1 + tanh(A_v). (B,) -> (B,)."""
    return 1.0 + torch.tanh(z_v_next - z_v)


def unit_mean(w_tilde: torch.Tensor, valid: torch.Tensor, eps: float) -> torch.Tensor:
    """Unit-mean normalisation (Eq. 8): w = w_tilde / max(mean_valid(w_tilde), eps).

    w_tilde: (B,) float; valid: (B,) bool. Invalid entries come back 0; with no valid entry
    everything is 0. Same shape out.
    """
    valid = valid.bool()
    w = torch.where(valid, w_tilde, torch.zeros_like(w_tilde))
    n = valid.sum()
    if int(n) == 0:
        return w
    c = w.sum() / n
    return w / c.clamp_min(eps)


def recap_advantage(
    reward: torch.Tensor, v: torch.Tensor, v_next: torch.Tensor, done: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Imit-Recap's TD residual r + gamma (1 - d) V(s') - V(s). All (B,)."""
    return reward + gamma * (1.0 - done.float()) * v_next - v


def recap_filter(advantage: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Recap's hard threshold 1[A >= epsilon] as float weights. (B,) -> (B,)."""
    return (advantage >= epsilon).float()


def success_filter(outcome_label: torch.Tensor, intervention_window: torch.Tensor) -> torch.Tensor:
    """Filtered BC's gate: 1 on policy samples credited with success, 0 on the rest.

    outcome_label: (B,) float, 1 / 0 / NaN (credit.assign_credit); intervention_window: (B,)
    bool. Kept: every frame of an autonomous success and the handed-back suffix of a recovered
    rollout (the frames intervention-aware credit labels 1: HABC's B_O^succ, here with g = 1).
    Dropped: failed and unlabeled policy samples, and intervention windows (the arm imitates the
    policy's own successes, not the operator). Returns (B,) float.
    """
    keep = (outcome_label == 1.0) & ~intervention_window.bool()
    return keep.float()


def pick_recap_epsilon(advantage: torch.Tensor, pass_rate: float) -> float:
    """The threshold passing ``pass_rate`` of held-out rollout transitions (B,) -> float."""
    if not 0.0 < pass_rate <= 1.0:
        raise ValueError(f"recap pass_rate must be in (0, 1], got {pass_rate}")
    if advantage.numel() == 0:
        return 0.0
    return float(torch.quantile(advantage.float(), 1.0 - pass_rate))
