"""The round-1 diagnostic: its seeds, its tasks and its analysis on small synthetic data."""

import dataclasses
from pathlib import Path

import pytest

from habc_benchmark import diagnose as D
from habc_benchmark.config import find_root, from_dict, load_preset
from habc_benchmark.plan import build_tasks, with_dependencies
from habc_benchmark.report import diagnose_section
from habc_benchmark.report.diagnose_model import DiagnoseResults
from habc_benchmark.seeds import SeedPlan, check_plans_disjoint, purpose_of
from habc_benchmark.stats import wilson_interval

ROOT = find_root(Path(__file__).parent)


def test_fresh_demos_follow_the_demos_in_the_demo_block():
    plans = [
        SeedPlan(s, demos=60, rollouts_per_round=20, rounds=5, eval_trials=50, fresh_demos=20)
        for s in (0, 1, 2)
    ]
    check_plans_disjoint(plans)  # fresh demos count as training seeds of their protocol seed
    fresh = plans[1].fresh_demo_seeds()
    assert (fresh.start, fresh.stop) == (100_060, 100_080)
    assert all(purpose_of(s) == "demo" for s in fresh)
    assert not set(fresh) & set(plans[1].demo_seeds())
    with pytest.raises(ValueError, match="fresh_demos"):
        SeedPlan(0, demos=99_990, rollouts_per_round=20, rounds=1, eval_trials=5, fresh_demos=20)


def test_diagnose_config_is_validated_and_follows_seeds():
    with pytest.raises(ValueError, match="diagnose_seeds"):
        from_dict({"seeds": [0, 1], "diagnose": True, "diagnose_seeds": [3]})
    with pytest.raises(ValueError, match="diagnose: needs habc"):
        from_dict({"diagnose": True, "methods": ["imit_dagger"], "step2_rounds": 0})
    cfg = from_dict({"seeds": [0, 1, 2], "diagnose": True, "diagnose_seeds": [0, 2]})
    assert [s for s in cfg.seeds if cfg.diagnosed("state", s)] == [0, 2]
    assert not cfg.diagnosed("pixel", 0)
    assert cfg.with_seeds((1, 2)).diagnose_seeds == (2,)


def _tasks(**changes):
    cfg = dataclasses.replace(load_preset("smoke", ROOT), **changes)
    return build_tasks(cfg, Path("/nonexistent/out"), ROOT, ("state",))


def test_diagnose_runs_its_arms_and_only_what_they_need():
    tasks = _tasks()
    keys = [t.key for t in tasks]
    assert len(keys) == len(set(keys))
    need = {t.key for t in with_dependencies(tasks, [t for t in tasks if t.kind == "diagnose"])}
    pre = "state/s0"
    assert {
        f"{pre}/demos/fresh_demos/r000",
        f"{pre}/train/fresh_demos/r001",
        f"{pre}/eval/filtered_bc/r001",
        f"{pre}/eval/sft_continued/r001",
        f"{pre}/eval/imit_dagger/r001",
        f"{pre}/eval/habc/r001",
        f"{pre}/eval/sft/r000",
        f"{pre}/diagnose/sft/r000",
    } <= need
    # nothing of the other methods, of later rounds or of the probes
    assert not {k for k in need if "imit_recap" in k or "/r002" in k or "probes" in k}
    # filtered BC trains on habc's round-1 rollouts, not on rollouts of its own
    assert f"{pre}/rollouts/filtered_bc/r001" not in keys


def test_the_control_is_the_grids_sft_continued_or_trained_by_the_diagnostic():
    with_control = [t.key for t in _tasks() if t.key.endswith("sft_continued/r001")]
    without = [
        t.key
        for t in _tasks(
            state=dataclasses.replace(
                load_preset("smoke", ROOT).state, sft_continued_control=False
            )
        )
        if "sft_continued" in t.key
    ]
    assert sorted(with_control) == sorted(without)  # round 1 only, trained once either way
    assert not [t for t in _tasks(diagnose=False) if t.kind == "diagnose" or "fresh" in t.key]


def test_recovery_counts_takeovers_and_saves():
    r = D.recovery(
        [
            (False, "success"),
            (False, "failure"),
            (True, "success"),
            (True, "failure"),
            (True, "success"),
        ]
    ).to_dict()
    assert (r["rollouts"], r["autonomous_success"], r["autonomous_failure"]) == (5, 1, 1)
    assert (r["taken_over"], r["taken_over_success"]) == (3, 2)
    assert r["rate"] == pytest.approx(2 / 3)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(wilson_interval(2, 3))
    assert r["takeover_share_of_failing"] == pytest.approx(3 / 4)
    assert D.recovery([(False, "success")]).to_dict()["rate"] is None


def _ev(successes, n):
    return {"trials": [{"success": i < successes, "length": 10} for i in range(n)]}


def test_arm_table_pools_seeds_and_compares_with_sft_on_the_same_seeds():
    evals = {
        "sft/r000": {0: _ev(5, 10), 1: _ev(1, 10)},
        "fresh_demos/r001": {0: _ev(8, 10), 1: _ev(6, 10)},
        "habc/r001": {0: _ev(2, 10)},
    }  # seed 1 not finished
    t = D.arm_table(evals)
    assert (t["sft"]["successes"], t["sft"]["n"]) == (6, 20)
    fd = t["fresh_demos"]
    assert (fd["successes"], fd["n"], fd["seeds"]) == (14, 20, [0, 1])
    assert fd["z_vs_sft"] > 1.96
    assert t["habc"]["sft_same_seeds"]["successes"] == 5  # SFT on seed 0 only
    assert t["habc"]["z_vs_sft"] < 0
    assert t["control"] is None and t["filtered_bc"] is None


def _record(loss, rec, jitter):
    return {
        "windows": 4,
        "loss": [
            {"stream": s, "windows": 10, "samples": 4, "mean": m, "sem": 0.01}
            for s, m in loss.items()
        ],
        "recovery": D.recovery(rec).to_dict(),
        "jitter": [
            {"source": s, "samples": 100, "median_mm": m, "p90_mm": 2 * m}
            for s, m in jitter.items()
        ],
    }


def test_pooled_analysis_averages_losses_and_sums_recoveries():
    per = {
        0: _record(
            {"demo_heldout": 0.2, "auto_failure": 0.6},
            [(True, "success"), (False, "failure")],
            {"demo": 0.0, "policy": 10.0},
        ),
        1: _record(
            {"demo_heldout": 0.4, "auto_failure": None},
            [(True, "failure"), (True, "success")],
            {"demo": 0.0, "policy": 20.0},
        ),
    }
    p = D.pooled_analysis(per)
    assert p["loss"]["demo_heldout"] == pytest.approx(
        {"windows": 20, "seeds": 2, "mean": 0.3, "min": 0.2, "max": 0.4}
    )
    assert p["loss"]["auto_failure"]["seeds"] == 1 and p["loss"]["auto_failure"]["mean"] == 0.6
    assert p["loss"]["int_success"]["mean"] is None  # in neither record
    assert (p["recovery"]["taken_over"], p["recovery"]["taken_over_success"]) == (3, 2)
    assert p["jitter"]["policy"]["median_mm_mean"] == pytest.approx(15.0)
    assert p["jitter"]["policy"]["samples"] == 200
    assert D.pooled_analysis({}) is None


def test_same_rollouts_names_the_methods_whose_round_1_differs():
    same = {"outcomes": ["success", "failure"], "lengths": [10, 20]}
    records = {
        "rollouts_habc_r001": same,
        "rollouts_imit_dagger_r001": same,
        "rollouts_habc_v_r001": {"outcomes": ["failure", "failure"], "lengths": [10, 20]},
    }
    check = D.same_rollouts(records, ["habc", "imit_dagger", "habc_v", "imit_recap"])
    assert check == {"methods": ["habc", "habc_v", "imit_dagger"], "differ": ["habc_v"]}
    assert D.same_rollouts({"rollouts_habc_r001": same}, ["habc"]) is None


def test_section_is_marked_not_run_or_pending():
    cfg = load_preset("smoke", ROOT)
    off = diagnose_section.section(DiagnoseResults.from_dict({"enabled": False, "seeds": []}), cfg)
    assert off[0] == diagnose_section.TITLE and len(off) == 4
    d = {"enabled": True, "seeds": [0], "arms": D.arm_table({}), "analysis": None, "per_seed": {}}
    typed = DiagnoseResults.from_dict(d)
    assert typed.analysis is None and all(a is None for a in typed.arms.values())
    pending = diagnose_section.section(typed, cfg)
    rows = [line for line in pending if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 1 + len(D.ARMS)  # header, SFT, one per arm (all pending)


@pytest.fixture(scope="module")
def diagnose_run(tmp_path_factory):
    """`habc-benchmark --preset smoke --diagnose`: the diagnostic alone, end to end."""
    from habc_benchmark import cli

    base = tmp_path_factory.mktemp("diagnose")
    out, docs = base / "out", base / "docs"
    argv = [
        "--preset",
        "smoke",
        "--tracks",
        "state",
        "--diagnose",
        "--out",
        str(out),
        "--docs",
        str(docs),
    ]
    return cli.main(argv), argv, out, docs


def test_smoke_diagnose_runs_the_arms_and_reports_them(diagnose_run):
    import json

    rc, _, out, docs = diagnose_run
    assert rc == 0
    cfg = load_preset("smoke", ROOT)
    d = json.loads((docs / "results" / "results.json").read_text())["diagnose"]
    assert d["enabled"] and d["seeds"] == list(cfg.seeds)
    n = cfg.state.eval_trials * len(cfg.seeds)
    for arm, _ in D.ARMS:
        a = d["arms"][arm]
        assert a["n"] == n and a["ci_low"] <= a["rate"] <= a["ci_high"]
        assert a["z_vs_sft"] is not None
    an = d["analysis"]
    assert an["loss"]["demo_heldout"]["mean"] > 0 and an["loss"]["demo_train"]["mean"] > 0
    rec = an["recovery"]
    assert rec["rollouts"] == cfg.state.rollouts_per_round * len(cfg.seeds)
    assert (
        rec["autonomous_success"] + rec["autonomous_failure"] + rec["taken_over"]
        == rec["rollouts"]
    )
    assert "demo" in an["jitter"] and an["jitter"]["demo"]["samples"] > 0
    seed0 = d["per_seed"]["0"]
    assert [r["stream"] for r in seed0["loss"]] == list(D.LOSS_ORDER)
    assert all(r["samples"] in (0, cfg.diagnose_windows) for r in seed0["loss"])
    # the grid outside the diagnostic did not run
    assert not (out / "state" / "seed_0" / "eval" / "imit_recap").exists()
    md = (docs / "results.md").read_text()
    part = md.split(diagnose_section.TITLE)[1].split("\n## ")[0]
    rows = [line for line in part.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == (2 + len(D.ARMS)) + (1 + len(D.LOSS_ORDER)) + (1 + len(an["jitter"]))
    assert set(d["filtered_bc_windows"]) == {str(s) for s in cfg.seeds}


def test_smoke_diagnose_resumes(diagnose_run):
    from habc_benchmark import cli

    _, argv, out, _ = diagnose_run
    before = (out / "state" / "seed_0" / "diagnose.json").stat().st_mtime_ns
    assert cli.main(argv) == 0
    assert (out / "state" / "seed_0" / "diagnose.json").stat().st_mtime_ns == before
