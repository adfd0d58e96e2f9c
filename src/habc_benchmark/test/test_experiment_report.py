"""The report compares like with like (the same protocol seeds only) and states typed verdicts;
the prose is rendered from those values (one rendering test per kind of sentence)."""

from pathlib import Path

import pytest

from habc_benchmark.config import find_root, load_preset
from habc_benchmark.report import prose
from habc_benchmark.report.claims import ClaimId, LengthComparison, Verdict, claims, rate_verdict
from habc_benchmark.report.collect import _concurrency, timing
from habc_benchmark.report.comparisons import (
    Side,
    ablation_readings,
    control_reading,
    versus_sft_readings,
)
from habc_benchmark.report.diagnostics import critic_calibration_table
from habc_benchmark.report.model import Cell, Count, Phase, Report, Timing, TrackResults
from habc_benchmark.stats import Summary, wilson_interval


@pytest.fixture(scope="module")
def cfg():
    return load_preset("cpu", find_root(Path(__file__).parent))


def _cell(key: str, per_seed: dict[int, tuple[int, int]], len_mean: float | None = None) -> Cell:
    method, r = key.split("/r")
    k, n = sum(v[0] for v in per_seed.values()), sum(v[1] for v in per_seed.values())
    lo, hi = wilson_interval(k, n)
    rates = [a / b for a, b in per_seed.values()]
    return Cell(
        method=method,
        round_index=int(r),
        seeds=len(per_seed),
        rate_mean=sum(rates) / len(rates),
        rate_min=min(rates),
        rate_max=max(rates),
        pooled=Summary(n, k, k / n, lo, hi, len_mean, None if len_mean is None else 10.0),
        per_seed={s: Count(a, b) for s, (a, b) in per_seed.items()},
        seed_list=tuple(sorted(per_seed)),
    )


def _track(cfg, *cells: Cell, **extra) -> TrackResults:
    return TrackResults(
        name="state",
        config=cfg.state,
        seeds=tuple(cfg.seeds),
        cells={(c.method, c.round_index): c for c in cells},
        trials={},
        records={},
        probes={},
        critic_calibration=extra.get("critic_calibration", {}),
    )


def test_matched_counts_only_the_named_seeds():
    cell = _cell("sft/r000", {0: (29, 50), 1: (2, 50), 2: (28, 50)})
    assert cell.matched([0]) == Count(29, 50)
    assert cell.matched([0, 2, 7]) == Count(57, 100)


def test_control_reading_uses_the_control_seeds(cfg):
    # SFT pooled over three seeds is 41 %, but the control only finished seed 0 (SFT: 58 %)
    td = _track(cfg, _cell("sft/r000", {0: (29, 50), 1: (2, 50), 2: (31, 50)}))
    held = {
        1: _cell("sft_continued/r001", {0: (26, 50), 1: (30, 50)}),
        3: _cell("sft_continued/r003", {0: (34, 50)}),
    }
    first = {"habc": _cell("habc/r001", {0: (8, 50), 1: (7, 50), 2: (6, 50)})}
    c = control_reading(td, held, first)
    assert c is not None
    assert c.seeds == (0,) and c.rates == ((1, 0.52), (3, 0.68))
    assert c.sft == Count(29, 50) and c.last == Count(34, 50) and not c.falls_below_sft
    assert c.round1 == Count(26, 50) and c.first == (("habc", Count(8, 50)),)

    dropped = control_reading(td, {1: _cell("sft_continued/r001", {0: (5, 50)})}, {})
    assert dropped is not None and dropped.falls_below_sft and dropped.round1 is None
    never = _track(cfg, _cell("sft/r000", {0: (0, 50)}))
    assert control_reading(never, {1: _cell("sft_continued/r001", {0: (5, 50)})}, {}) is None


def test_control_reading_renders_its_values(cfg):
    td = _track(cfg, _cell("sft/r000", {0: (29, 50), 1: (2, 50)}))
    held = {1: _cell("sft_continued/r001", {0: (26, 50)})}
    c = control_reading(td, held, {"habc": _cell("habc/r001", {0: (8, 50), 1: (7, 50)})})
    lines = prose.control_lines(c)
    assert "protocol seed 0)" in lines[0] and "reaches r1 52 % against SFT's 58 %" in lines[0]
    assert "does not fall below SFT" in lines[0]
    assert lines[1].startswith("- Round 1 against the control's round 1 (52 %, protocol seed 0)")
    assert "HABC 16 % (z = -3.8)" in lines[1]


def test_ablation_reading_compares_on_the_ablations_seeds(cfg):
    habc = _cell("habc/r001", {0: (5, 50), 1: (10, 50)})
    mix = _cell("mix/r001", {0: (20, 50)})
    arms = {"mix": {"method": "habc", "train_overrides": {"a": 1}}}
    (a,) = ablation_readings(_track(cfg, habc, mix), arms, 2)
    assert (a.name, a.base, dict(a.overrides)) == ("mix", "habc", {"a": 1})
    assert [(v.round_index, v.arm, v.other) for v in a.rounds] == [
        (1, Count(20, 50), Count(5, 50))
    ]
    assert a.against_sft is None  # no SFT cell, and r2 never finished

    sft = _cell("sft/r000", {0: (30, 50), 1: (1, 50)})
    (a,) = ablation_readings(_track(cfg, habc, mix, sft), arms, 1)
    s = a.against_sft
    assert s is not None and (s.arm, s.other) == (Count(20, 50), Count(30, 50))
    assert s.side is Side.BELOW and round(s.z, 1) == -2.0


def test_versus_sft_reading_matches_seeds_and_names_the_side(cfg):
    td = _track(
        cfg,
        _cell("sft/r000", {0: (10, 50), 1: (40, 50)}),
        _cell("habc/r001", {0: (30, 50)}),
        _cell("habc/r002", {0: (12, 50)}),
    )
    (v,) = versus_sft_readings(td, ["habc"], 3)
    assert v.method == "habc" and v.seeds == (0,)
    assert [(x.round_index, x.arm, x.other, x.side) for x in v.rounds] == [
        (1, Count(30, 50), Count(10, 50), Side.ABOVE),
        (2, Count(12, 50), Count(10, 50), Side.APART),
    ]
    assert versus_sft_readings(_track(cfg), ["habc"], 3) == []


def test_rate_verdicts():
    assert rate_verdict(True, 2.5) is Verdict.HELD
    assert rate_verdict(True, 1.0) is Verdict.NOT_SIGNIFICANT
    assert rate_verdict(False, 2.5) is Verdict.NOT_REPRODUCED
    assert rate_verdict(True, 2.5, both_zero=True) is Verdict.NO_SUCCESS_EITHER_ARM


def _report(cfg, td: TrackResults) -> Report:
    return Report(cfg, {"state": td}, Timing({}, {}, {}, {}), 360, "now", None, None)


def test_claims_are_typed_verdicts_on_the_state_track(cfg):
    R = cfg.state.step1_rounds
    td = _track(
        cfg,
        _cell("sft/r000", {0: (10, 50)}, 160.0),
        _cell(f"habc/r{R:03d}", {0: (40, 50)}, 150.0),
        _cell(f"habc_v/r{R:03d}", {0: (3, 50)}, 170.0),
        _cell(f"imit_dagger/r{R:03d}", {0: (12, 50)}, 170.0),
        _cell("imit_dagger/r001", {0: (4, 50)}, 170.0),
    )
    by_id = {c.claim: c for c in claims(_report(cfg, td))}
    assert by_id[ClaimId.IMPROVES_ON_SFT].verdict is Verdict.HELD
    assert by_id[ClaimId.BEATS_HABC_V].verdict is Verdict.HELD
    base = by_id[ClaimId.HABC_V_BEATS_BASELINES]
    assert base.verdict is Verdict.NOT_REPRODUCED and base.best_baseline == "imit_dagger"
    length = by_id[ClaimId.SHORTER_TRAJECTORIES]
    assert length.verdict is Verdict.TOO_FEW_SUCCESSES  # HABC-V: 3 successes
    assert isinstance(length.evidence, LengthComparison) and length.evidence.shorter_by == 20.0
    dagger = by_id[ClaimId.DAGGER_FALLS_BELOW_SFT]
    assert dagger.verdict is Verdict.NOT_SIGNIFICANT and dagger.evidence.rounds == (1,)
    assert ClaimId.CREDIT_BEATS_NAIVE not in by_id and ClaimId.IR_HELPS_LATER not in by_id
    assert prose.claim_line(by_id[ClaimId.IMPROVES_ON_SFT]) == (
        "- HABC improves on SFT: **held**. HABC r3 80 % [67, 89] vs SFT r0 20 % [11, 33] "
        "(pooled over seeds, z = +6.00)"
    )


def test_timing_sums_task_time_per_seed_and_skips_unfinished_tasks():
    progress = {
        "tasks": {
            "state/s0/train/sft/r000": {
                "state": "done",
                "wall_s": 300.0,
                "started": 0,
                "ended": 300,
            },
            "state/s0/eval/sft/r000": {
                "state": "done",
                "wall_s": 20.0,
                "started": 300,
                "ended": 320,
            },
            "state/s1/demos/sft/r000": {"state": "done", "resumed": True},
            "pixel/s0/train/sft/r000": {"state": "running", "since": 5},
        }
    }
    t = timing(progress)
    assert t["task_s"] == {"state/s0": 320.0}
    assert t["elapsed_s"] == {"state/s0": 320}
    assert t["stages"]["train (SFT)"] == {"n": 1, "mean_s": 300.0, "total_s": 300.0}
    assert t["concurrency"] == {"state/s0": 1.0}  # its two tasks ran one after the other


def test_concurrency_counts_tasks_running_next_to_a_seeds_tasks():
    # s0 runs 0..100; s1 runs 50..150 next to it: half of each seed's time is shared
    c = _concurrency([("state/s0", 0.0, 100.0), ("state/s1", 50.0, 150.0)])
    assert c == {"state/s0": 1.5, "state/s1": 1.5}


def test_critic_calibration_table_averages_each_phase_over_seeds(cfg):
    def phase(bce, ece, n=100):
        return Phase(n, bce, ece, 0.25)

    cal = {
        ("habc", 1): {
            0: {
                "start": phase(0.8, 0.3),
                "after_pretrain": phase(0.5, 0.1),
                "end": phase(0.6, 0.2),
            },
            1: {
                "start": phase(0.6, 0.1),
                "after_pretrain": phase(0.7, 0.3),
                "end": phase(1.0, 0.4),
            },
        },
        ("habc_v", 2): {0: {"start": Phase(0, None, None, None)}},
    }
    table = critic_calibration_table(_track(cfg, critic_calibration=cal))
    rows = [line for line in table if line.startswith("| HABC")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1:] == ["1", "2", "100", "0.25", "0.70 / 0.20", "0.60 / 0.20", "0.80 / 0.30"]
    assert [c.strip() for c in rows[1].strip("|").split("|")][5:] == ["– / –"] * 3
    assert critic_calibration_table(_track(cfg)) == []
