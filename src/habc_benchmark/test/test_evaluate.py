"""evaluate: Wilson intervals, summaries, held-out seeds, and the CLI on the scripted expert."""

import json
import math

import pytest

from habc_benchmark import evaluate
from habc_benchmark.evaluation import EvalConfig, EvalResult
from habc_benchmark.seeds import EVAL_BASE, SeedOverlapError
from habc_benchmark.stats import aggregate, summarize, two_proportion_z, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (
            0,
            10,
            0.0,
            0.2775,
        ),  # reference values (Wilson 1927; e.g. statsmodels proportion_confint)
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (18, 50, 0.2414, 0.4986),
    ],
)
def test_wilson_interval_matches_reference_values(k, n, lo, hi):
    a, b = wilson_interval(k, n)
    assert a == pytest.approx(lo, abs=1e-4)
    assert b == pytest.approx(hi, abs=1e-4)


def test_wilson_interval_contains_estimate_and_shrinks_with_n():
    for n in (1, 2, 7, 50, 500):
        for k in range(0, n + 1, max(1, n // 7)):
            lo, hi = wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert (wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0]) < (
        wilson_interval(5, 10)[1] - wilson_interval(5, 10)[0]
    )


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summary_lengths_count_only_successes():
    s = summarize([True, False, True, False], [100, 300, 140, 50])
    assert (s.n, s.successes, s.rate) == (4, 2, 0.5)
    assert s.len_mean == pytest.approx(120.0)
    assert s.len_std == pytest.approx(20.0)
    none = summarize([False, False], [300, 300])
    assert none.len_mean is None and none.len_std is None


def test_aggregate_reports_spread_over_seeds_and_pooled_interval():
    agg = aggregate(
        [([True] * 3 + [False], [10, 20, 30, 300]), ([True] + [False] * 3, [40, 300, 300, 300])]
    )
    assert agg.seeds == 2
    assert agg.rate_mean == pytest.approx(0.5)
    assert agg.rate_std == pytest.approx(0.25)
    assert (agg.rate_min, agg.rate_max) == (0.25, 0.75)
    assert (agg.pooled.successes, agg.pooled.n) == (4, 8)
    assert agg.pooled.ci_low <= 0.5 <= agg.pooled.ci_high
    assert agg.pooled.len_mean == pytest.approx(25.0)


def test_two_proportion_z_sign_and_size():
    assert two_proportion_z(30, 50, 15, 50) > 2.9
    assert two_proportion_z(15, 50, 30, 50) < -2.9
    assert two_proportion_z(0, 50, 0, 50) == 0.0


def test_eval_config_refuses_training_seeds():
    with pytest.raises(SeedOverlapError, match="held-out"):
        EvalConfig(trials=5, first_seed=0)
    with pytest.raises(SeedOverlapError):
        EvalConfig(trials=10, first_seed=10_000_000 - 5)
    with pytest.raises(ValueError, match="trials"):
        EvalConfig(trials=0)
    with pytest.raises(ValueError, match="obs_mode"):
        EvalConfig(obs_mode="depth")


def test_cli_rejects_training_seeds(capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["expert", "--trials", "2", "--seed", "100"])
    assert exit_info.value.code == 2
    assert "held-out" in capsys.readouterr().err


def test_cli_evaluates_scripted_expert_and_writes_json_and_markdown(tmp_path):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    rc = evaluate.main(
        ["expert", "--trials", "2", "--json", str(out_json), "--md", str(out_md), "--quiet"]
    )
    assert rc == 0
    data = json.loads(out_json.read_text())
    res = EvalResult.from_dict(data)
    assert [t.seed for t in res.trials] == [EVAL_BASE, EVAL_BASE + 1]
    s = res.summary
    assert s.n == 2 and 0.0 <= s.rate <= 1.0 and s.ci_low <= s.rate <= s.ci_high
    # The scripted expert solves the task (sim-rig.md: ~130 ticks), well inside T_max.
    assert s.successes >= 1
    assert 50 < s.len_mean < 300
    assert all(t.length <= 300 for t in res.trials)
    assert not math.isnan(res.ticks_per_s)
    md = out_md.read_text()
    assert "Wilson 95 %" in md and f"{s.successes}/2" in md


def _tiny_checkpoint(path):
    from habc_trainer.checkpoint import TrainerState, save_checkpoint
    from habc_trainer.config import TrainConfig
    from habc_trainer.models.example import SyntheticStreams
    from habc_trainer.update import build_learner

    cfg = TrainConfig(
        method="sft",
        model_preset="tiny",
        model_overrides={"horizon": 50, "execute_steps": 25, "action_patch": 10},
    )
    mc = cfg.model_config().with_dims(proprio_dim=20, action_dim=20, env_state_dim=13)
    learner = build_learner(cfg, mc, SyntheticStreams(mc, per_stream=4).norm_stats())
    return save_checkpoint(path, learner, cfg, TrainerState())


def test_rig_policy_repeats_per_episode_seed_and_clips_the_gripper(tmp_path):
    """A trial is a function of (checkpoint, episode seed): the policy noise is seeded per
    episode; gripper commands stay on the rig's stroke as the rig executes them."""
    from habc_benchmark.evaluation import load_sim, rig_policy_factory
    from habc_sim.env import PouchEnv
    from habc_sim.model import GRIPPER_STROKE

    ck = _tiny_checkpoint(tmp_path / "ck")
    env = PouchEnv(load_sim(None), obs_mode="state")
    try:
        factory = rig_policy_factory(str(ck), env, 50, 25)
        obs = env.reset(EVAL_BASE)
        a = factory(env, EVAL_BASE).infer(obs)["actions"]
        b = factory(env, EVAL_BASE).infer(obs)["actions"]
        c = factory(env, EVAL_BASE + 1).infer(obs)["actions"]
    finally:
        env.close()
    assert a.shape == (50, 20)
    assert (a == b).all()
    assert not (a == c).all()
    grip = a[:, [9, 19]]
    assert grip.min() >= 0.0 and grip.max() <= GRIPPER_STROKE
