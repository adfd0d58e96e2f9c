"""Flow actor behind the Policy interface: masked per-sample loss, learning, inference."""

import dataclasses

import numpy as np
import pytest
import torch

from habc_core import features as F
from habc_trainer.models.batch import TrainBatch
from habc_trainer.models.config import model_preset
from habc_trainer.models.example import example_stats, make_example_batch, make_example_obs
from habc_trainer.models.policy import ACTIONS_OUT, FlowPolicy, TrainablePolicy
from habc_trainer.normalize import FeatureStats, NormStats

torch.set_num_threads(1)
CFG = model_preset("tiny").with_dims(proprio_dim=6, action_dim=4, env_state_dim=3)


def _policy(cfg=CFG, n=16, **kw):
    torch.manual_seed(0)
    batch = make_example_batch(cfg, n, np.random.default_rng(0), **kw)
    return FlowPolicy(cfg, example_stats(batch, cfg)), batch


def _fitted(cfg, batch, steps):
    """A flow policy fitted to `batch` with Adam (seeded)."""
    torch.manual_seed(0)
    policy = FlowPolicy(cfg, example_stats(batch, cfg))
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        opt.zero_grad()
        policy.loss(batch, gen).mean().backward()
        opt.step()
    return policy


def _loss(policy, batch, seed=0):
    return policy.loss(batch, torch.Generator().manual_seed(seed))


def test_the_policy_boundary_gives_what_the_trainer_and_the_node_call():
    # loss: per-sample (B,), differentiable, and computed on the prepared observation it is
    # handed (the update prepares once); infer: an (H, D) float32 chunk, reproducible per seed.
    policy, batch = _policy()
    assert isinstance(policy, TrainablePolicy)  # the names; what they return is checked below
    typed = TrainBatch.build(batch, CFG, policy.stats, "cpu")
    from_dict, from_typed = _loss(policy, batch), _loss(policy, typed)
    assert from_dict.shape == (16,) and torch.equal(from_dict, from_typed)
    shifted = dataclasses.replace(typed, obs={**typed.obs, F.PROPRIO: typed.obs[F.PROPRIO] + 3})
    assert not torch.allclose(_loss(policy, shifted), from_typed)
    from_typed.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
    obs = make_example_obs(CFG, np.random.default_rng(0))
    chunk = policy.infer(obs, generator=torch.Generator().manual_seed(0))[ACTIONS_OUT]
    again = policy.infer(obs, generator=torch.Generator().manual_seed(0))[ACTIONS_OUT]
    other = policy.infer(obs, generator=torch.Generator().manual_seed(1))[ACTIONS_OUT]
    assert chunk.shape == (CFG.horizon, CFG.action_dim) and chunk.dtype == np.float32
    assert np.array_equal(chunk, again) and not np.array_equal(chunk, other)


def test_loss_is_per_sample_and_ignores_steps_past_the_episode_end():
    policy, batch = _policy()
    batch[F.ACTION_VALID][0, 3:] = False
    base = _loss(policy, batch)
    assert base.shape == (16,)
    changed = dict(batch)
    changed[F.ACTIONS] = batch[F.ACTIONS].clone()
    changed[F.ACTIONS][0, 3:] += 50.0  # invalid steps only
    assert torch.allclose(_loss(policy, changed), base)
    changed[F.ACTIONS][0, 0] += 50.0  # a valid step
    after = _loss(policy, changed)
    assert after[0] > base[0] and torch.allclose(after[1:], base[1:])


def test_intervention_windows_are_supervised_only_on_human_dims(monkeypatch):
    # The noisy chunk fed to the expert holds every dim (the other arm's executed actions are
    # context); the *loss* must only see M^int dims. Pin the prediction to isolate the loss.
    policy, batch = _policy(intervention=True)
    batch[F.ACTION_VALID][:] = True
    monkeypatch.setattr(policy.model, "velocity", lambda cond, x, s: torch.zeros_like(x))
    base = _loss(policy, batch)
    changed = dict(batch)
    changed[F.ACTIONS] = batch[F.ACTIONS].clone()
    changed[F.ACTIONS][:, :, 2:] += 50.0  # the right arm's dims: M^int is False there
    assert torch.allclose(_loss(policy, changed), base)
    changed[F.ACTIONS][:, :, 0] += 50.0
    assert bool((_loss(policy, changed) > base).all())
    non_int = dict(changed, **{F.INTERVENTION_WINDOW: torch.zeros(16, dtype=torch.bool)})
    assert bool((_loss(policy, non_int) > _loss(policy, changed)).all())  # all dims count


def test_sample_without_supervised_elements_has_zero_loss():
    policy, batch = _policy()
    batch[F.ACTION_VALID][2] = False
    assert float(_loss(policy, batch)[2].detach()) == 0.0


def test_overfitting_a_tiny_batch_reduces_the_loss():
    policy, batch = _policy(n=8)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)

    def eval_loss():
        with torch.no_grad():
            return float(sum(_loss(policy, batch, s).mean() for s in range(4)) / 4)

    before = eval_loss()
    gen = torch.Generator().manual_seed(1)
    for _ in range(150):
        opt.zero_grad()
        policy.loss(batch, gen).mean().backward()
        opt.step()
    assert eval_loss() < 0.5 * before


def test_infer_returns_an_h_by_d_chunk_in_robot_units():
    # Actions around 1000 with std 0.01: a normalised-space output would be near 0.
    stats = NormStats(
        {
            F.PROPRIO: FeatureStats.identity(6),
            F.ENV_STATE: FeatureStats.identity(3),
            F.ACTION: dataclasses.replace(
                FeatureStats.identity(4),
                mean=np.full(4, 1000.0, np.float32),
                std=np.full(4, 0.01, np.float32),
            ),
        }
    )
    policy = FlowPolicy(CFG, stats)
    out = policy.infer(
        make_example_obs(CFG, np.random.default_rng(0)), generator=torch.Generator().manual_seed(0)
    )
    assert out["actions"].shape == (CFG.horizon, CFG.action_dim)
    assert out["actions"].dtype == np.float32
    assert np.abs(out["actions"] - 1000.0).max() < 5.0


def test_image_conditioned_actor_trains_and_infers():
    cfg = dataclasses.replace(CFG, cameras=("top", "left_wrist"))
    policy, batch = _policy(cfg, n=4, image_hw=24)  # resized to image_size inside
    loss = _loss(policy, batch)
    loss.mean().backward()
    assert all(p.grad is not None for p in policy.model.obs_encoder.cameras.parameters())
    out = policy.infer(make_example_obs(cfg, np.random.default_rng(0)))
    assert out["actions"].shape == (cfg.horizon, cfg.action_dim)


@pytest.mark.parametrize("name", ["tiny", "sim", "base"])
def test_presets_build(name):
    cfg = model_preset(name).with_dims(proprio_dim=20, action_dim=14)
    assert cfg.horizon % cfg.action_patch == 0


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: \\['base', 'sim', 'tiny'\\]"):
        model_preset("huge")


def test_bad_model_field_is_named():
    with pytest.raises(ValueError, match="action_patch"):
        dataclasses.replace(CFG, action_patch=7)


def test_trained_actor_reproduces_the_demonstrated_chunks_at_inference():
    # Guards the sign conventions end to end: training target, Euler direction, un-normalising.
    cfg = model_preset("tiny").with_dims(proprio_dim=6, action_dim=4)
    batch = make_example_batch(cfg, 32, np.random.default_rng(0), source=F.SOURCE_DEMO)
    batch[F.ACTION_VALID][:] = True
    q = batch[F.OBS_PREFIX + F.PROPRIO]
    batch[F.ACTIONS] = q[:, None, :4] * torch.linspace(0.5, 1.5, cfg.horizon)[None, :, None] + 3
    policy = _fitted(cfg, batch, 300)
    pred = policy.infer_batch(batch, torch.Generator().manual_seed(1))
    err = (pred - batch[F.ACTIONS]).abs().mean()
    baseline = (batch[F.ACTIONS] - batch[F.ACTIONS].mean(0)).abs().mean()
    assert float(err) < 0.25 * float(baseline)


def test_sampled_chunks_are_denoised_when_a_patch_is_wider_than_the_token():
    # 5 steps x 8 dims = 40 numbers per token of 16 dims: the noisy chunk only reaches the output
    # fully through the actor's pass-through; without it sampled chunks keep most of the noise.
    from habc_trainer.models.actor import FlowActor

    torch.manual_seed(0)
    cfg = dataclasses.replace(
        model_preset("tiny"),
        d_model=16,
        horizon=10,
        execute_steps=5,
        action_patch=5,
    ).with_dims(proprio_dim=3, action_dim=8)
    actor = FlowActor(cfg)
    obs = {
        F.PROPRIO: torch.zeros(64, 3),
        F.TASK: torch.zeros(64, cfg.max_prompt_tokens, dtype=torch.int64),
    }
    target = torch.linspace(-1.0, 1.0, 80).reshape(1, 10, 8).expand(64, 10, 8)
    mask = torch.ones(64, 10, 8, dtype=torch.bool)
    opt = torch.optim.Adam(actor.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = actor.flow_loss(obs, target, mask, gen).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    samples = actor.sample(obs, torch.Generator().manual_seed(1))
    assert samples.std(0).mean() < 0.15, samples.std(0).mean()
    assert (samples.mean(0) - target[0]).abs().mean() < 0.15


def test_inpainting_keeps_the_mode_of_the_running_chunk():
    """Real-time chunking: where demonstrations go either way (here up or down a ramp), a free
    chunk picks a way at random, an inpainted one continues the way the running chunk goes."""
    from habc_core.policy import PREFIX_ACTIONS, PREFIX_FROZEN, PREFIX_GUIDED

    cfg = model_preset("tiny").with_dims(proprio_dim=6, action_dim=4)
    batch = make_example_batch(cfg, 64, np.random.default_rng(0), source=F.SOURCE_DEMO)
    batch[F.ACTION_VALID][:] = True
    for key, value in batch.items():  # one observation, two ways to act on it
        if key.startswith(F.OBS_PREFIX) and torch.is_tensor(value):
            value[:] = value[0]
    way = torch.where(torch.arange(64) % 2 == 0, 1.0, -1.0)[:, None, None]
    ramp = torch.linspace(0.0, 1.0, cfg.horizon)[None, :, None]
    batch[F.ACTIONS] = (3.0 + way * ramp).expand(-1, -1, 4).contiguous()
    policy = _fitted(cfg, batch, 400)
    obs = {F.PROPRIO: batch[F.OBS_PREFIX + F.PROPRIO][0].numpy(), F.TASK: batch[F.TASK][0]}
    up = (3.0 + ramp[0].expand(-1, 4)).numpy()
    # The running chunk goes up; 60 % of a chunk of it is left, 20 % will run before the switch.
    h = cfg.horizon
    prefix = {PREFIX_ACTIONS: up[: h * 3 // 5], PREFIX_FROZEN: h // 5}
    free_ways, guided_ways = [], []
    for seed in range(12):
        free = policy.infer(obs, generator=torch.Generator().manual_seed(seed))
        guided = policy.infer({**obs, **prefix}, generator=torch.Generator().manual_seed(seed))
        assert PREFIX_GUIDED not in free and guided[PREFIX_GUIDED] is True
        free_ways.append(np.sign(free[ACTIONS_OUT][-1].mean() - 3.0))
        guided_ways.append(np.sign(guided[ACTIONS_OUT][-1].mean() - 3.0))
    assert 2 <= free_ways.count(1.0) <= 10  # the policy is bimodal
    assert guided_ways.count(1.0) == 12
    with pytest.raises(ValueError, match="prefix.actions"):
        policy.infer({**obs, PREFIX_ACTIONS: np.zeros((20, 3), np.float32)})
