"""Experiment plumbing behind evaluate / habc-benchmark: seed ranges, presets, the task graph."""

from pathlib import Path

import pytest

from habc_benchmark.config import (
    STEP1_METHODS,
    ExperimentConfig,
    TrackConfig,
    find_root,
    from_dict,
    load_preset,
    preset_names,
)
from habc_benchmark.plan import build_tasks, chains, seed_context
from habc_benchmark.seeds import (
    EVAL_BASE,
    SeedOverlapError,
    SeedPlan,
    check_eval_seeds,
    check_plans_disjoint,
    purpose_of,
)


def test_seed_plans_are_disjoint_by_purpose_and_protocol_seed():
    plans = [
        SeedPlan(s, demos=200, rollouts_per_round=100, rounds=5, eval_trials=50, probe_episodes=3)
        for s in range(3)
    ]
    check_plans_disjoint(plans)
    for p in plans:
        assert all(purpose_of(s) == "demo" for s in p.demo_seeds())
        assert all(purpose_of(s) == "eval" for s in p.eval_seeds())
        assert not p.training_seeds() & set(p.eval_seeds())
        assert not p.training_seeds() & set(p.probe_seeds())
    # common random numbers: one held-out set for every protocol seed
    assert list(plans[0].eval_seeds()) == list(plans[2].eval_seeds())
    assert not set(plans[0].demo_seeds()) & set(plans[1].demo_seeds())


def test_seed_plan_rejects_sizes_that_would_overflow_a_range():
    with pytest.raises(ValueError, match="demos"):
        SeedPlan(0, demos=100_001, rollouts_per_round=1, rounds=1, eval_trials=1)
    with pytest.raises(ValueError, match="rollouts_per_round"):
        SeedPlan(0, demos=1, rollouts_per_round=1001, rounds=1, eval_trials=1)
    with pytest.raises(ValueError, match="protocol_seed"):
        SeedPlan(10, demos=1, rollouts_per_round=1, rounds=1, eval_trials=1)


def test_eval_seed_check():
    check_eval_seeds(EVAL_BASE, 50)
    with pytest.raises(SeedOverlapError):
        check_eval_seeds(1_000_000, 50)


def test_presets_load_and_unknown_names_list_the_valid_ones():
    root = find_root(Path(__file__).parent)
    names = preset_names(root)
    assert {"smoke", "cpu", "gpu"} <= set(names)
    for name in ("smoke", "cpu", "gpu"):
        cfg = load_preset(name, root)
        assert cfg.name == name
        assert set(cfg.state.methods) == set(STEP1_METHODS)
    assert load_preset("cpu", root).state.eval_trials >= 50
    assert load_preset("gpu", root).state.eval_trials >= 50
    assert len(load_preset("cpu", root).seeds) >= 3
    with pytest.raises(ValueError, match="valid: .*cpu.*gpu.*smoke"):
        load_preset("nope", root)


def test_config_validation_names_field_and_value():
    with pytest.raises(ValueError, match="methods: unknown.*'dagger'"):
        TrackConfig(methods=("dagger",))
    with pytest.raises(ValueError, match="steps_per_round"):
        TrackConfig(train_overrides={"steps_per_round": 5})
    with pytest.raises(ValueError, match="seeds: duplicates"):
        ExperimentConfig(seeds=(0, 0))
    with pytest.raises(ValueError, match="unknown keys.*'demoz'"):
        from_dict({"demoz": 3})
    with pytest.raises(ValueError, match="step2_rounds"):
        TrackConfig(methods=("habc_v",), step2_rounds=1)
    with pytest.raises(ValueError, match="pixel_seeds: must be in .*-1"):
        from_dict({"pixel_seeds": [-1], "pixel": {"methods": ["habc"]}})
    with pytest.raises(ValueError, match="pixel_seeds: set, but this preset has no pixel track"):
        from_dict({"pixel_seeds": [0]})


def test_pixel_track_runs_its_own_seeds_unless_the_cli_names_them(tmp_path):
    cfg = from_dict(
        {"seeds": [0, 1, 2], "pixel_seeds": [0], "pixel": {"methods": ["habc"], "step2_rounds": 0}}
    )
    assert cfg.seeds_of("state") == (0, 1, 2) and cfg.seeds_of("pixel") == (0,)
    keys = [t.key for t in build_tasks(cfg, tmp_path, find_root(Path(__file__).parent))]
    assert {k.split("/")[1] for k in keys if k.startswith("pixel/")} == {"s0"}
    assert {k.split("/")[1] for k in keys if k.startswith("state/")} == {"s0", "s1", "s2"}
    one = cfg.with_seeds((2,))
    assert one.seeds_of("state") == one.seeds_of("pixel") == (2,)


def test_task_graph_gives_every_method_the_same_budget_from_one_sft(tmp_path):
    root = find_root(Path(__file__).parent)
    cfg = from_dict({"seeds": [0, 1], "step1_rounds": 3, "step2_rounds": 2})
    tasks = {t.key: t for t in build_tasks(cfg, tmp_path, root)}
    ctx = seed_context(cfg, "state", 0, tmp_path, root)
    cells = chains(ctx)
    assert cells[0] == ("sft", 0)
    assert len(cells) == 1 + 5 * 3 + 2 * 2
    for m in STEP1_METHODS:
        # round 1 of every method rolls out the one SFT checkpoint of its seed
        assert tasks[f"state/s0/rollouts/{m}/r001"].deps == ("state/s0/train/sft/r000",)
        for r in (1, 2, 3):
            assert f"state/s0/eval/{m}/r{r:03d}" in tasks
    # step 2: both arms continue from habc's round 3; habc_ir also trains on habc's rollouts
    assert tasks["state/s0/rollouts/habc_ir/r004"].deps == ("state/s0/train/habc/r003",)
    assert "state/s0/rollouts/habc/r002" in tasks["state/s0/train/habc_ir/r004"].deps
    assert tasks["state/s1/train/sft/r000"].deps == ("state/s1/demos/sft/r000",)
    # every dependency exists, and the graph is acyclic in list order
    seen = set()
    for t in build_tasks(cfg, tmp_path, root):
        assert all(d in seen for d in t.deps), t.key
        seen.add(t.key)


def test_sft_continued_control_trains_on_demos_from_sft_without_rollouts(tmp_path):
    from habc_benchmark.stages import (
        SFT_CONTINUED,
        data_roots,
        init_checkpoint,
        train_config,
    )

    root = find_root(Path(__file__).parent)
    cfg = from_dict(
        {"seeds": [0], "step1_rounds": 2, "step2_rounds": 0, "sft_continued_control": True}
    )
    ctx = seed_context(cfg, "state", 0, tmp_path, root)
    assert [(m, r) for m, r in chains(ctx) if m == SFT_CONTINUED] == [
        (SFT_CONTINUED, 1),
        (SFT_CONTINUED, 2),
    ]
    tasks = {t.key: t for t in build_tasks(cfg, tmp_path, root)}
    control = [k for k in tasks if f"/{SFT_CONTINUED}/" in k]
    assert sorted(k.split("/")[2] for k in control) == ["eval", "eval", "train", "train"]
    assert tasks[f"state/s0/train/{SFT_CONTINUED}/r001"].deps == ("state/s0/train/sft/r000",)
    assert tasks[f"state/s0/train/{SFT_CONTINUED}/r002"].deps == (
        f"state/s0/train/{SFT_CONTINUED}/r001",
    )
    assert data_roots(ctx, SFT_CONTINUED, 2) == [ctx.demos_dir]
    assert init_checkpoint(ctx, SFT_CONTINUED, 1) == ctx.ckpt("sft", 0)
    assert init_checkpoint(ctx, SFT_CONTINUED, 2) == ctx.ckpt(SFT_CONTINUED, 1)
    # its checkpoints never shadow the real SFT run, and it trains like every arm
    assert ctx.ckpt(SFT_CONTINUED, 1) != ctx.ckpt("sft", 1)
    tc = train_config(ctx, SFT_CONTINUED, cfg.state.steps_per_round)
    assert tc.method == "sft" and tc.steps_per_round == cfg.state.steps_per_round
    assert tc.lr_warmup_steps == train_config(ctx, "habc", 1).lr_warmup_steps


def test_ablation_arm_runs_like_a_step1_method_with_its_overrides(tmp_path):
    from habc_benchmark.stages import data_roots, init_checkpoint, train_config

    root = find_root(Path(__file__).parent)
    arm = {"method": "habc", "train_overrides": {"batch_mix": [0.5, 0.25, 0.25]}}
    cfg = from_dict(
        {"seeds": [0], "step1_rounds": 2, "step2_rounds": 1, "ablations": {"habc_demos50": arm}}
    )
    ctx = seed_context(cfg, "state", 0, tmp_path, root)
    assert ("habc_demos50", 2) in chains(ctx) and ("habc_demos50", 3) not in chains(ctx)
    tasks = {t.key: t for t in build_tasks(cfg, tmp_path, root)}
    assert tasks["state/s0/rollouts/habc_demos50/r001"].deps == ("state/s0/train/sft/r000",)
    assert tasks["state/s0/rollouts/habc_demos50/r002"].deps == (
        "state/s0/train/habc_demos50/r001",
    )
    assert tasks["state/s0/train/habc_demos50/r002"].deps == (
        "state/s0/rollouts/habc_demos50/r002",
    )
    # step 2 still continues habc itself, not the ablation
    assert tasks["state/s0/rollouts/habc_ir/r003"].deps == ("state/s0/train/habc/r002",)
    assert data_roots(ctx, "habc_demos50", 2) == [ctx.demos_dir]  # + its rollouts once on disk
    assert init_checkpoint(ctx, "habc_demos50", 2) == ctx.ckpt("habc_demos50", 1)
    assert ctx.ckpt("habc_demos50", 1) != ctx.ckpt("habc", 1)
    tc = train_config(ctx, "habc_demos50", 7)
    assert tc.method == "habc" and tuple(tc.batch_mix) == (0.5, 0.25, 0.25)
    assert train_config(ctx, "habc", 7).batch_mix is None


def test_ablation_validation_names_the_arm_and_the_bad_value():
    with pytest.raises(ValueError, match="ablations.habc: the name is taken"):
        TrackConfig(ablations={"habc": {"method": "habc"}})
    with pytest.raises(ValueError, match="ablations.x.method: 'sft' is not an online method"):
        TrackConfig(ablations={"x": {"method": "sft"}})
    with pytest.raises(ValueError, match=r"ablations.x.train_overrides: \['seed'\]"):
        TrackConfig(ablations={"x": {"method": "habc", "train_overrides": {"seed": 1}}})
    with pytest.raises(ValueError, match="ablations.x: expected keys"):
        TrackConfig(ablations={"x": {"method": "habc", "lr": 1}})
