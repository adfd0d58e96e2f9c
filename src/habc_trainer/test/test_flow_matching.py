"""Shared flow-matching maths: time sampling, interpolation, Euler, masked loss."""

import pytest
import torch

from habc_trainer import flow_matching as fm

torch.set_num_threads(1)


def test_time_is_beta_1_5_1_in_unit_interval():
    s = fm.sample_time(20000, torch.Generator().manual_seed(0))
    assert float(s.min()) >= fm.SIGMA_MIN and float(s.max()) <= 1.0
    assert float(s.mean()) == pytest.approx(1.5 / 2.5, abs=0.01)
    g = fm.sample_time(20000, torch.Generator().manual_seed(0), alpha=2.0, beta=3.0)
    assert float(g.mean()) == pytest.approx(2.0 / 5.0, abs=0.01)


def test_time_sampling_is_reproducible_from_the_generator():
    a = fm.sample_time(8, torch.Generator().manual_seed(3))
    b = fm.sample_time(8, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_interpolation_endpoints_and_target():
    a, n = torch.ones(2, 3, 4), torch.zeros(2, 3, 4)
    x, u = fm.noisy_actions(a, n, torch.tensor([0.0, 1.0]))
    assert torch.equal(x[0], a[0]) and torch.equal(x[1], n[1])
    assert torch.equal(u, n - a)


def test_euler_follows_the_exact_velocity_to_the_data():
    a = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1))
    out = fm.euler_integrate(lambda x, s: noise - a, noise, 10)  # straight-line flow
    assert torch.allclose(out, a, atol=1e-5)


def test_masked_squared_error_ignores_masked_out_elements():
    pred, tgt = torch.zeros(2, 2, 2), torch.ones(2, 2, 2)
    tgt[0, 1] = 100.0
    mask = torch.ones(2, 2, 2, dtype=torch.bool)
    mask[0, 1] = False
    mask[1] = False
    assert fm.masked_squared_error(pred, tgt, mask).tolist() == [1.0, 0.0]
