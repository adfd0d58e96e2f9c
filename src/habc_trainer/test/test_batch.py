"""The typed training batch: converted once, rows picked consistently, same update as a dict."""

import numpy as np
import torch

from habc_core import features as F
from habc_trainer.config import TrainConfig
from habc_trainer.models.batch import TrainBatch, concat_batches
from habc_trainer.models.example import example_stats, make_example_batch
from habc_trainer.models.inputs import action_loss_mask, prepare_obs
from habc_trainer.update import StepContext, build_learner, update

torch.set_num_threads(1)
CFG = TrainConfig(method="habc", model_preset="tiny", batch_size=16, warmup_steps=0)
MC = CFG.model_config().with_dims(proprio_dim=6, action_dim=4, env_state_dim=3)


def _dict_batch(seed=0):
    rng = np.random.default_rng(seed)
    return concat_batches(
        [
            make_example_batch(MC, 4, rng, source=F.SOURCE_DEMO),
            make_example_batch(MC, 4, rng, intervention=True),
            make_example_batch(MC, 4, rng, outcome=1.0),
            make_example_batch(MC, 4, rng, outcome=float("nan")),
        ]
    )


def test_build_converts_every_field_once_to_its_dtype():
    batch = _dict_batch()
    stats = example_stats(batch, MC)
    tb = TrainBatch.build(batch, MC, stats, "cpu")
    assert len(tb) == 16
    assert tb.actions.dtype == torch.float32 and tb.action_mask.dtype == torch.bool
    assert tb.outcome_label.dtype == torch.float32 and tb.reward.dtype == torch.float32
    assert tb.source.dtype == torch.int64 and tb.model_index.dtype == torch.int64
    for name in ("intervention_window", "efficiency_target", "terminal_success", "episode_done"):
        assert getattr(tb, name).dtype == torch.bool, name
    assert torch.equal(tb.action_mask, action_loss_mask(batch))
    for prefix, obs in ((F.OBS_PREFIX, tb.obs), (F.NEXT_OBS_PREFIX, tb.next_obs)):
        want = prepare_obs(batch, prefix, MC, stats)
        assert obs.keys() == want.keys() and all(torch.equal(obs[k], want[k]) for k in want)


def test_subset_equals_building_from_the_picked_rows():
    batch = _dict_batch()
    stats = example_stats(batch, MC)
    idx = torch.tensor([0, 5, 9, 15])
    picked = {
        k: [v[i] for i in idx.tolist()] if isinstance(v, list) else v[idx]
        for k, v in batch.items()
    }
    a = TrainBatch.build(batch, MC, stats, "cpu").subset(idx)
    b = TrainBatch.build(picked, MC, stats, "cpu")
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, dict):
            assert all(torch.equal(x[k], y[k]) for k in y), name
        elif isinstance(x, tuple):  # the prompts
            assert x == y and len(x) == len(idx), name
        else:
            assert torch.allclose(x, y, rtol=0, atol=0, equal_nan=True), name  # labels: NaN


def test_update_on_a_typed_batch_equals_update_on_its_dict():
    batch = _dict_batch()
    stats = example_stats(batch, MC)
    learners = [build_learner(CFG, MC, stats) for _ in range(2)]
    inputs = [batch, TrainBatch.build(batch, MC, stats, "cpu")]
    metrics = [
        update(lr, b, CFG, StepContext(0, 1), torch.Generator().manual_seed(0))
        for lr, b in zip(learners, inputs, strict=True)
    ]
    assert metrics[0] == metrics[1]
    for name, module in learners[0].modules().items():
        other = learners[1].modules()[name].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items()), name
