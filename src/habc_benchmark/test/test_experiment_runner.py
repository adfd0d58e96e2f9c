"""The benchmark's progress file is shared by runs of different tracks on one out dir."""

from __future__ import annotations

import json
from pathlib import Path

from habc_benchmark.runner import Runner


def _runner(path: Path, status: dict[str, dict]) -> Runner:
    r = Runner([], workers=1, progress_path=path, log=lambda _m: None)
    r.status = status
    return r


def test_progress_of_two_runs_is_merged_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    state = _runner(path, {"state/s0/demos/sft/r000": {"state": "done", "wall_s": 11.0}})
    pixel = _runner(path, {"pixel/s0/demos/sft/r000": {"state": "running"}})
    state._write_progress()
    pixel._write_progress()
    pixel.status["pixel/s0/demos/sft/r000"] = {"state": "done", "wall_s": 54.0}
    pixel._write_progress()

    data = json.loads(path.read_text("utf-8"))
    assert data["tasks"] == {
        "state/s0/demos/sft/r000": {"state": "done", "wall_s": 11.0},
        "pixel/s0/demos/sft/r000": {"state": "done", "wall_s": 54.0},
    }
    assert data["counts"] == {"done": 2}


def test_a_rerun_keeps_the_timings_of_finished_tasks_of_other_tracks(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    _runner(path, {"state/s0/eval/habc/r001": {"state": "done", "wall_s": 19.0}})._write_progress()
    rerun = _runner(path, {"pixel/s0/eval/habc/r001": {"state": "pending"}})
    rerun._write_progress()
    tasks = json.loads(path.read_text("utf-8"))["tasks"]
    assert tasks["state/s0/eval/habc/r001"]["wall_s"] == 19.0
    assert tasks["pixel/s0/eval/habc/r001"] == {"state": "pending"}
