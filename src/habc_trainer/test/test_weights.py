"""The gate (Eq. 5-7), unit-mean normalisation (Eq. 8) and Recap's filter, by hand."""

import math

import pytest
import torch

from habc_trainer import weights as W


def t(*xs):
    return torch.tensor(xs, dtype=torch.float32)


def test_gate_matches_hand_computed_values():
    # s1: p_v = 0.5, A_v = 1, A_e = -1 - 8 + 10 = 1 -> 1 + tanh(1)
    # s2: p_v = 0.75, A_v = -2, A_e = -1 -> 1 + tanh(0.25 * -2 + 0.75 * -1) = 1 + tanh(-1.25)
    g = W.gate(t(0.0, math.log(3)), t(1.0, math.log(3) - 2), t(-10.0, -5.0), t(-8.0, -5.0))
    assert g == pytest.approx([1 + math.tanh(1.0), 1 + math.tanh(-1.25)], abs=1e-6)


def test_gate_low_viability_follows_a_v_high_viability_follows_a_e():
    # p_v ~ 0: only A_v matters; p_v ~ 1: only A_e matters.
    low = W.gate(t(-20.0), t(-19.0), t(-5.0), t(-100.0))
    high = W.gate(t(20.0), t(0.0), t(-10.0), t(-8.0))
    assert float(low) == pytest.approx(1 + math.tanh(1.0), abs=1e-5)
    assert float(high) == pytest.approx(1 + math.tanh(1.0), abs=1e-5)


def test_gate_terminal_success_uses_td_target_zero():
    # d_t = 1: A_e = 0 - V_e(s_t); with p_v = 1 (logit 30) and V_e = -2, g = 1 + tanh(2).
    g = W.gate(
        t(30.0, 30.0),
        t(30.0, 30.0),
        t(-2.0, -2.0),
        t(-7.0, -7.0),
        done=torch.tensor([True, False]),
    )
    assert g == pytest.approx([1 + math.tanh(2.0), 1 + math.tanh(-1 - 7 + 2)], abs=1e-5)


def test_gate_keeps_shape_and_stays_in_open_interval():
    gen = torch.Generator().manual_seed(0)
    z, zn = torch.randn(4, 3, generator=gen) * 5, torch.randn(4, 3, generator=gen) * 5
    v, vn = -torch.rand(4, 3, generator=gen) * 50, -torch.rand(4, 3, generator=gen) * 50
    g = W.gate(z, zn, v, vn)
    assert g.shape == (4, 3)
    assert bool(((g >= 0) & (g <= 2)).all())


def test_gate_viability_ignores_efficiency():
    assert float(W.gate_viability(t(0.0), t(0.5))) == pytest.approx(1 + math.tanh(0.5))


def test_unit_mean_divides_by_mean_over_valid_only():
    w = W.unit_mean(t(2.0, 0.0, 1.0, 5.0), torch.tensor([True, True, True, False]), 1e-3)
    assert w.tolist() == pytest.approx([2.0, 0.0, 1.0, 0.0])
    w = W.unit_mean(t(0.5, 1.5, 4.0), torch.tensor([True, True, False]), 1e-3)
    assert w.tolist() == pytest.approx([0.5, 1.5, 0.0])
    w = W.unit_mean(t(0.2, 0.6), torch.tensor([True, True]), 1e-3)
    assert float(w.mean()) == pytest.approx(1.0)


def test_unit_mean_clamps_a_tiny_mean_at_eps():
    w = W.unit_mean(t(1e-6, 0.0), torch.tensor([True, True]), 0.01)
    assert w.tolist() == pytest.approx([1e-4, 0.0])
    assert W.unit_mean(t(1.0), torch.tensor([False]), 0.01).tolist() == [0.0]


def test_recap_filter_and_epsilon_pick_pass_rate():
    adv = torch.arange(100, dtype=torch.float32)
    eps = W.pick_recap_epsilon(adv, 0.25)
    assert float(W.recap_filter(adv, eps).mean()) == pytest.approx(0.25, abs=0.011)
    adv = W.recap_advantage(
        t(-1.0, -100.0), t(-10.0, -3.0), t(-9.5, -1.0), torch.tensor([False, True]), 0.9
    )
    assert adv.tolist() == pytest.approx([-1 + 0.9 * -9.5 + 10, -100 + 3])
    with pytest.raises(ValueError, match="pass_rate"):
        W.pick_recap_epsilon(adv, 0.0)


def test_success_filter_keeps_only_policy_samples_credited_with_success():
    nan = float("nan")
    label = t(1.0, 1.0, 0.0, nan, 1.0)
    is_int = torch.tensor([False, True, False, False, False])
    # success kept; a success-labeled intervention window, a failure, an unlabeled frame dropped
    assert W.success_filter(label, is_int).tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]
