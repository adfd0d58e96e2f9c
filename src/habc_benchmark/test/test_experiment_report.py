"""The report's control-arm reading compares like with like: the same protocol seeds only."""

from habc_benchmark.report import _control_reading, matched


def _cell(per_seed: dict[int, tuple[int, int]]) -> dict:
    per = {str(s): {"successes": k, "n": n, "rate": k / n} for s, (k, n) in per_seed.items()}
    k, n = sum(v[0] for v in per_seed.values()), sum(v[1] for v in per_seed.values())
    return {
        "per_seed": per,
        "seed_list": sorted(per_seed),
        "pooled": {"successes": k, "n": n, "rate": k / n},
    }


def test_matched_counts_only_the_named_seeds():
    cell = _cell({0: (29, 50), 1: (2, 50), 2: (28, 50)})
    assert matched(cell, [0]) == {"successes": 29, "n": 50}
    assert matched(cell, [0, 2, 7]) == {"successes": 57, "n": 100}


def test_control_reading_uses_the_control_seeds_and_states_the_verdict():
    # SFT pooled over three seeds is 41 %, but the control only finished seed 0 (SFT: 58 %)
    td = {"cells": {"sft/r000": _cell({0: (29, 50), 1: (2, 50), 2: (31, 50)})}}
    held = {1: _cell({0: (26, 50), 1: (30, 50)}), 3: _cell({0: (34, 50)})}
    first = {"habc": _cell({0: (8, 50), 1: (7, 50), 2: (6, 50)})}
    lines = _control_reading(td, held, first)
    assert "protocol seed 0)" in lines[0] and "r1 52 %, r3 68 %" in lines[0]
    assert "against SFT's 58 %" in lines[0] and "does not fall below SFT" in lines[0]
    assert "control's round 1 (52 %" in lines[1] and "HABC 16 %" in lines[1]

    dropped = {1: _cell({0: (5, 50)})}
    assert "falls significantly below SFT too" in _control_reading(td, dropped, {})[0]
    assert _control_reading({"cells": {"sft/r000": _cell({0: (0, 50)})}}, dropped, {}) == []


def test_ablation_reading_compares_on_the_ablations_seeds():
    from habc_benchmark.report import ablation_reading

    td = {
        "cells": {"habc/r001": _cell({0: (5, 50), 1: (10, 50)}), "mix/r001": _cell({0: (20, 50)})}
    }
    line = ablation_reading(td, {"mix": {"method": "habc", "train_overrides": {"a": 1}}}, 2)[0]
    assert line.startswith("- Ablation mix (HABC with `{'a': 1}`) against HABC: r1 40 % vs 10 %")
    assert "r2" not in line and "Against SFT" not in line

    td["cells"]["sft/r000"] = _cell({0: (30, 50), 1: (1, 50)})
    line = ablation_reading(td, {"mix": {"method": "habc", "train_overrides": {"a": 1}}}, 1)[0]
    assert line.endswith("Against SFT: r1 40 % vs 60 % (z = -2.0, below SFT).")


def test_versus_sft_reading_matches_seeds_and_names_the_verdict():
    from habc_benchmark.report import versus_sft_reading

    td = {
        "cells": {
            "sft/r000": _cell({0: (10, 50), 1: (40, 50)}),
            "habc/r001": _cell({0: (30, 50)}),
            "habc/r002": _cell({0: (12, 50)}),
        }
    }
    line = versus_sft_reading(td, ["habc"], 3)[0]
    assert line.startswith("- HABC against SFT on the same protocol seeds (0): ")
    assert "r1 30/50 = 60 % vs SFT 10/50 = 20 % (z = +4.1, above SFT)" in line
    assert "r2 12/50 = 24 % vs SFT 10/50 = 20 % (z = +0.5, not significantly apart" in line
    assert "r3" not in line
    assert versus_sft_reading({"cells": {}}, ["habc"], 3) == []


def test_timing_sums_task_time_per_seed_and_skips_unfinished_tasks():
    from habc_benchmark.report import timing

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
    from habc_benchmark.report import _concurrency

    # s0 runs 0..100; s1 runs 50..150 next to it: half of each seed's time is shared
    c = _concurrency([("state/s0", 0.0, 100.0), ("state/s1", 50.0, 150.0)])
    assert c == {"state/s0": 1.5, "state/s1": 1.5}


def test_critic_calibration_table_averages_each_phase_over_seeds():
    from habc_benchmark.report import critic_calibration_table

    def phase(bce, ece, n=100):
        return {"samples": n, "bce": bce, "ece": ece, "mean_p_v": 0.3, "success_rate": 0.25}

    cal = {
        "habc/r001": {
            "0": {
                "start": phase(0.8, 0.3),
                "after_pretrain": phase(0.5, 0.1),
                "end": phase(0.6, 0.2),
            },
            "1": {
                "start": phase(0.6, 0.1),
                "after_pretrain": phase(0.7, 0.3),
                "end": phase(1.0, 0.4),
            },
        },
        "habc_v/r002": {"0": {"start": {"samples": 0}}},
    }
    rows = [line for line in critic_calibration_table(cal) if line.startswith("| HABC")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1:] == ["1", "2", "100", "0.25", "0.70 / 0.20", "0.60 / 0.20", "0.80 / 0.30"]
    assert [c.strip() for c in rows[1].strip("|").split("|")][5:] == ["– / –"] * 3
    assert critic_calibration_table({}) == []
