"""Dual-head critic ranges and the parent value head's distributional targets."""

import numpy as np
import pytest
import torch

from habc_core import features as F
from habc_trainer.models.config import model_preset
from habc_trainer.models.critic import DualHeadCritic, ParentValueHead
from habc_trainer.models.example import example_stats, make_example_batch
from habc_trainer.models.inputs import prepare_obs

torch.set_num_threads(1)
CFG = model_preset("tiny").with_dims(proprio_dim=6, action_dim=4, env_state_dim=3)


def _obs(n=32):
    batch = make_example_batch(CFG, n, np.random.default_rng(0))
    return prepare_obs(batch, F.OBS_PREFIX, CFG, example_stats(batch, CFG))


def test_efficiency_head_stays_in_minus_t_max_to_zero():
    torch.manual_seed(0)
    critic = DualHeadCritic(CFG, t_max=50.0)
    with torch.no_grad():
        critic.f_e.bias.fill_(1e3)
        _, v_hi = critic(_obs())
        critic.f_e.bias.fill_(-1e3)
        _, v_lo = critic(_obs())
    assert float(v_hi.min()) >= -50.0 and float(v_lo.max()) <= 0.0
    assert float(v_hi.max()) == pytest.approx(-50.0) and float(v_lo.min()) == pytest.approx(0.0)


def test_two_hot_preserves_the_expected_value():
    vh = ParentValueHead(CFG, -100.0, 0.0)
    y = torch.tensor([-100.0, -37.3, -0.2, 0.0, -250.0])
    d = vh.two_hot(y)
    assert torch.allclose(d.sum(-1), torch.ones(5))
    assert torch.allclose((d * vh.support).sum(-1), y.clamp(-100, 0), atol=1e-4)


def test_value_head_expected_value_is_inside_its_support():
    vh = ParentValueHead(CFG, -30.0, 0.0)
    with torch.no_grad():
        v = vh.expected(vh(_obs()))
    assert float(v.min()) >= -30.0 and float(v.max()) <= 0.0


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="t_max"):
        DualHeadCritic(CFG, t_max=0)
    with pytest.raises(ValueError, match="v_min < v_max"):
        ParentValueHead(CFG, 0.0, -1.0)
