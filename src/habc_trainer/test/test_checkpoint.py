"""Checkpoint round trips: weights, optimiser state, stats, configs; no pickle."""

import numpy as np
import pytest
import torch

from habc_trainer import features as F
from habc_trainer.checkpoint import (
    CheckpointError,
    TrainerState,
    load_checkpoint,
    load_policy,
    restore_learner,
    save_checkpoint,
)
from habc_trainer.config import TrainConfig
from habc_trainer.models.example import SyntheticStreams, make_example_obs
from habc_trainer.train_round import batch_counts, draw_batch
from habc_trainer.update import StepContext, build_learner, update

torch.set_num_threads(1)


def _trained(tmp_path):
    cfg = TrainConfig(method="habc", model_preset="tiny", batch_size=16, warmup_steps=0,
                      lr_warmup_steps=0)
    mc = cfg.model_config().with_dims(proprio_dim=6, action_dim=4, env_state_dim=3)
    streams = SyntheticStreams(mc, per_stream=16)
    torch.manual_seed(0)
    learner = build_learner(cfg, mc, streams.norm_stats())
    rng = np.random.default_rng(0)
    counts = batch_counts((0.25, 0.25, 0.5), [16, 16, 16], 16)
    for i in range(2):
        update(learner, draw_batch(streams, counts, rng), cfg, StepContext(i, 0),
               torch.Generator().manual_seed(i))
    gen = torch.Generator().manual_seed(5)
    state = TrainerState(round_index=0, step_in_round=2, model_index=learner.model_index,
                         recap_epsilon=0.25, np_rng_states=[rng.bit_generator.state],
                         torch_rng_states=[gen.get_state()])
    path = save_checkpoint(tmp_path / "ck", learner, cfg, state, {"episodes": 3})
    return cfg, mc, learner, path


def test_round_trip_restores_weights_optimisers_stats_and_state(tmp_path):
    cfg, mc, learner, path = _trained(tmp_path)
    ckpt = load_checkpoint(path)
    assert ckpt.model_config == mc and ckpt.train_config == cfg
    assert ckpt.manifest == {"episodes": 3} and ckpt.model_index == 2
    assert load_policy(path).model_index == 2
    st = ckpt.trainer_state()
    assert (st.step_in_round, st.recap_epsilon) == (2, 0.25)
    assert torch.equal(st.torch_rng_states[0], torch.Generator().manual_seed(5).get_state())
    assert st.np_rng_states[0]["bit_generator"] == "PCG64"
    back = restore_learner(ckpt, cfg)
    for name, module in learner.modules().items():
        for (k, a), b in zip(module.state_dict().items(),
                             back.modules()[name].state_dict().values(), strict=True):
            assert torch.equal(a, b), f"{name}.{k}"
    for name, opt in learner.optimizers().items():
        a, b = opt.state_dict()["state"], back.optimizers()[name].state_dict()["state"]
        assert a.keys() == b.keys()
        for i in a:
            for k in a[i]:
                assert torch.equal(torch.as_tensor(a[i][k]), torch.as_tensor(b[i][k]))
    for key in (F.PROPRIO, F.ACTION, F.ENV_STATE):
        assert np.array_equal(back.policy.stats[key].mean, learner.policy.stats[key].mean)


def test_loaded_policy_infers_exactly_like_the_trained_one(tmp_path):
    _, mc, learner, path = _trained(tmp_path)
    obs = make_example_obs(mc, np.random.default_rng(1))
    policy = load_policy(path)
    a = learner.policy.infer(obs, generator=torch.Generator().manual_seed(0))["actions"]
    b = policy.infer(obs, generator=torch.Generator().manual_seed(0))["actions"]
    np.testing.assert_array_equal(a, b)


def test_checkpoint_holds_no_pickle(tmp_path):
    _, _, _, path = _trained(tmp_path)
    names = sorted(p.name for p in path.iterdir())
    assert names == ["config.yaml", "manifest.json", "model.safetensors", "optim.safetensors",
                     "rng.safetensors", "trainer.json"]
    assert not list(tmp_path.glob(".ck.*"))  # temp dir renamed away


def test_missing_file_is_a_clear_error(tmp_path):
    _, _, _, path = _trained(tmp_path)
    (path / "optim.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing optim.safetensors"):
        load_checkpoint(path)
