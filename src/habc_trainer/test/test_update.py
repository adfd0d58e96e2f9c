"""Per-method weight behaviour of the one update (Alg. 1) and a step of every method."""

import math

import numpy as np
import pytest
import torch

from habc_core import features as F
from habc_trainer.config import TrainConfig
from habc_trainer.methods import METHODS
from habc_trainer.models.batch import TrainBatch, concat_batches
from habc_trainer.models.example import example_stats, make_example_batch
from habc_trainer.models.inputs import prepare_obs
from habc_trainer.update import (
    DEMO,
    INTERVENTION,
    ROLLOUT_FAIL,
    ROLLOUT_SUCC,
    ROLLOUT_UNLABELED,
    StepContext,
    actor_weights,
    build_learner,
    critic_gate,
    sample_kinds,
    update,
)

torch.set_num_threads(1)


def _cfg(method="habc", **kw):
    kw.setdefault("warmup_steps", 0)
    return TrainConfig(method=method, model_preset="tiny", batch_size=32, lr_warmup_steps=0, **kw)


def _mc(cfg):
    return cfg.model_config().with_dims(proprio_dim=6, action_dim=4, env_state_dim=3)


def _mixed_batch(mc, n=8, seed=0, model_index=0):
    rng = np.random.default_rng(seed)
    b = concat_batches(
        [
            make_example_batch(mc, n, rng, source=F.SOURCE_DEMO),
            make_example_batch(mc, n, rng, intervention=True, model_index=model_index),
            make_example_batch(mc, n, rng, outcome=1.0, model_index=model_index),
            make_example_batch(mc, n, rng, outcome=0.0, model_index=model_index),
            make_example_batch(mc, n, rng, outcome=float("nan"), model_index=model_index),
        ]
    )
    b[F.ACTION_VALID][:, 0] = True  # every sample supervises something
    b[F.INTERVENTION_MASK][8:16, 0, 0] = True
    return b


def _typed(batch, mc):
    """The batch as the update consumes it (converted once, on the CPU)."""
    return TrainBatch.build(batch, mc, example_stats(batch, mc), "cpu")


def _weights(method, g, round_index=1, model_index=0, batch_model_index=0, **kw):
    cfg = _cfg(method, **kw)
    batch = _typed(_mixed_batch(_mc(cfg), model_index=batch_model_index), _mc(cfg))
    kinds = sample_kinds(batch)
    w, valid = actor_weights(batch, kinds, g, cfg.method_config(), cfg, round_index, model_index)
    return w, valid, kinds


G = torch.linspace(0.1, 1.9, 40)


def test_sample_kinds_follow_source_label_and_window():
    _, _, kinds = _weights("habc", G)
    expect = (
        [DEMO] * 8
        + [INTERVENTION] * 8
        + [ROLLOUT_SUCC] * 8
        + [ROLLOUT_FAIL] * 8
        + [ROLLOUT_UNLABELED] * 8
    )
    assert kinds.tolist() == expect
    cfg = _cfg("habc")
    assert sample_kinds(_mixed_batch(_mc(cfg))).tolist() == expect  # a dict batch (probes) too


@pytest.mark.parametrize("method", ["habc", "habc_v", "habc_ir", "habc_naive"])
def test_failed_and_unlabeled_rollouts_weigh_zero(method):
    w, _, kinds = _weights(method, G)
    assert bool((w[(kinds == ROLLOUT_FAIL) | (kinds == ROLLOUT_UNLABELED)] == 0).all())


def test_sft_weight_is_one_and_non_sft_has_unit_mean():
    w, valid, kinds = _weights("habc", G * 0.3)  # small g: normalisation must scale them up
    assert torch.equal(w[kinds == DEMO], torch.ones(8))
    non_sft = (kinds != DEMO) & valid
    assert float(w[non_sft].mean()) == pytest.approx(1.0, abs=1e-6)
    succ = kinds == ROLLOUT_SUCC
    ratio = w[succ] / (G * 0.3)[succ]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio))  # proportional to g


def test_intervention_reweighting_changes_only_intervention_weights():
    w_off, _, kinds = _weights("habc", G)
    w_on, _, _ = _weights("habc_ir", G)
    inter = kinds == INTERVENTION
    assert torch.allclose(w_off[inter], w_off[inter][0].expand(8))  # constant without IR
    assert not torch.allclose(w_on[inter], w_on[inter][0].expand(8))  # follows g with IR
    w_early, _, _ = _weights("habc_ir", G, round_index=0, ir_start_round=2)
    assert torch.allclose(w_early, w_off)  # IR switched on only from ir_start_round


def test_stale_rollouts_are_dropped_from_actor_weighting():
    w, valid, kinds = _weights(
        "habc", G, model_index=20000, batch_model_index=5000, stale_cutoff=10000
    )
    assert bool((w[kinds == ROLLOUT_SUCC] == 0).all())
    assert not bool(valid[kinds == ROLLOUT_SUCC].any())
    assert bool((w[kinds == INTERVENTION] > 0).all())


def test_recap_weights_are_the_hard_filter_and_are_not_normalised():
    g = torch.ones(40)
    passed = (torch.arange(40) % 2).float()
    cfg = _cfg("imit_recap")
    batch = _typed(_mixed_batch(_mc(cfg)), _mc(cfg))
    kinds = sample_kinds(batch)
    w, _ = actor_weights(batch, kinds, g, cfg.method_config(), cfg, 1, 0, passed)
    roll = kinds >= ROLLOUT_SUCC
    assert torch.equal(w[roll], passed[roll])
    assert bool((w[~roll] == 1).all())


def test_filtered_bc_keeps_demos_and_successful_policy_samples_only():
    w, _, kinds = _weights("filtered_bc", G)
    assert bool((w[(kinds == DEMO) | (kinds == ROLLOUT_SUCC)] == 1).all())
    assert bool(
        (
            w[(kinds == ROLLOUT_FAIL) | (kinds == ROLLOUT_UNLABELED) | (kinds == INTERVENTION)]
            == 0
        ).all()
    )


def test_habc_v_gate_ignores_the_efficiency_head():
    cfg = _cfg("habc")
    mc = _mc(cfg)
    batch = _mixed_batch(mc)
    learner = build_learner(cfg, mc, example_stats(batch, mc))
    st = learner.policy.stats
    both = {
        k: torch.cat([a, b])
        for (k, a), b in zip(
            prepare_obs(batch, F.OBS_PREFIX, mc, st).items(),
            prepare_obs(batch, F.NEXT_OBS_PREFIX, mc, st).values(),
            strict=True,
        )
    }
    done = batch[F.TERMINAL_SUCCESS]
    habc_v, habc = TrainConfig(method="habc_v").method_config(), cfg.method_config()
    gv0, _ = critic_gate(learner.critic, both, done, habc_v)
    g0, _ = critic_gate(learner.critic, both, done, habc)
    with torch.no_grad():
        learner.critic.f_e.weight.mul_(-5.0)  # change V_e only
    gv1, _ = critic_gate(learner.critic, both, done, habc_v)
    g1, _ = critic_gate(learner.critic, both, done, habc)
    assert torch.equal(gv0, gv1)
    assert not torch.allclose(g0, g1)


def _run(method, steps=1, seed=0, **kw):
    cfg = _cfg(method, **kw)
    mc = _mc(cfg)
    batch = _mixed_batch(mc, seed=seed)
    torch.manual_seed(seed)
    learner = build_learner(cfg, mc, example_stats(batch, mc))
    gen = torch.Generator().manual_seed(seed)
    return [update(learner, batch, cfg, StepContext(i, 1, -0.5), gen) for i in range(steps)]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_one_update_with_finite_losses(method):
    (m,) = _run(method)
    assert all(math.isfinite(v) for v in m.values())
    assert "loss/actor" in m and "loss/value" in m
    if METHODS[method].train_critic:
        assert {"loss/critic_bce", "loss/critic_huber", "critic/p_v_mean"} <= set(m)
    if method == "imit_recap":
        assert 0.0 <= m["recap/pass_rate"] <= 1.0


def test_warmup_keeps_the_gate_at_one():
    warm, after = _run("habc", steps=2, warmup_steps=1)
    assert warm["weights/std_rollout_succ"] == pytest.approx(0.0, abs=1e-7)  # g = 1 for all
    assert after["weights/std_rollout_succ"] > 0.0


def test_update_advances_model_index():
    cfg = _cfg("habc")
    mc = _mc(cfg)
    batch = _mixed_batch(mc)
    learner = build_learner(cfg, mc, example_stats(batch, mc))
    update(learner, batch, cfg, StepContext(0, 1), torch.Generator().manual_seed(0))
    assert learner.model_index == 1


def test_update_survives_batches_without_rollouts_or_actor_samples():
    cfg = _cfg("habc")
    mc = _mc(cfg)
    rng = np.random.default_rng(0)
    demos = make_example_batch(mc, 8, rng, source=F.SOURCE_DEMO)
    failed = make_example_batch(mc, 8, rng, outcome=0.0)  # every actor weight is 0
    learner = build_learner(cfg, mc, example_stats(demos, mc))
    gen = torch.Generator().manual_seed(0)
    for batch in (demos, failed):
        m = update(learner, batch, cfg, StepContext(0, 1), gen)
        assert all(math.isfinite(v) for v in m.values())
    assert m["loss/actor"] == 0.0


@pytest.mark.slow
def test_viability_head_learns_which_states_succeed():
    # Outcome is decided by the sign of env_state[0]: after training, p_v must separate them.
    cfg = _cfg("habc", lr_critic=3e-3)
    mc = _mc(cfg)
    rng = np.random.default_rng(0)
    batch = make_example_batch(mc, 256, rng, outcome=1.0)
    x = batch[F.OBS_PREFIX + F.ENV_STATE][:, 0]
    batch[F.OUTCOME_LABEL] = (x > 0).float()
    learner = build_learner(cfg, mc, example_stats(batch, mc))
    gen = torch.Generator().manual_seed(0)
    first = update(learner, batch, cfg, StepContext(0, 1), gen)
    for i in range(1, 150):
        last = update(learner, batch, cfg, StepContext(i, 1), gen)
    assert last["loss/critic_bce"] < 0.5 * first["loss/critic_bce"]
    with torch.no_grad():
        z, _ = learner.critic(prepare_obs(batch, F.OBS_PREFIX, mc, learner.policy.stats))
    p = torch.sigmoid(z)
    assert float(p[x > 0.5].mean()) > 0.8 and float(p[x < -0.5].mean()) < 0.2


def test_naive_labels_on_intervention_windows_train_the_viability_head():
    # habc_naive: an intervention window that carries a (naive) outcome label is a BCE target.
    cfg = _cfg("habc_naive")
    mc = _mc(cfg)
    rng = np.random.default_rng(0)
    batch = make_example_batch(mc, 8, rng, intervention=True)
    learner = build_learner(cfg, mc, example_stats(batch, mc))
    gen = torch.Generator().manual_seed(0)
    unlabeled = update(learner, batch, cfg, StepContext(0, 1), gen)
    assert unlabeled["loss/critic_bce"] == 0.0 and "critic/p_v_mean" not in unlabeled
    batch[F.OUTCOME_LABEL] = torch.ones(8)
    labeled = update(learner, batch, cfg, StepContext(1, 1), gen)
    assert labeled["loss/critic_bce"] > 0.0 and "critic/p_v_mean" in labeled
