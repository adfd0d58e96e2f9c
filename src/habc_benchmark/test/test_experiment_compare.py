"""habc-benchmark-compare: a rerun against an earlier results.json, cell by cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from habc_benchmark.compare import compare_cells, main


def _results(cells: dict[str, dict[int, tuple[int, int]] | None]) -> dict:
    out = {}
    for key, per in cells.items():
        out[key] = (
            None
            if per is None
            else {"per_seed": {str(s): {"successes": k, "n": n} for s, (k, n) in per.items()}}
        )
    return {"tracks": {"state": {"cells": out}}, "commit": "abc1234", "generated": "t"}


def test_compare_uses_only_cells_and_seeds_both_runs_have():
    before = _results(
        {"sft/r000": {0: (29, 50), 1: (2, 50)}, "habc/r001": {0: (8, 50)}, "habc/r002": None}
    )
    after = _results(
        {
            "sft/r000": {0: (34, 50), 2: (40, 50)},
            "habc/r001": {0: (30, 50)},
            "habc/r002": {0: (5, 50)},
        }
    )
    rows = {r["cell"]: r for r in compare_cells(before, after, "state")}
    assert set(rows) == {"sft/r000", "habc/r001"}
    assert rows["sft/r000"]["seeds"] == [0]
    assert rows["sft/r000"]["before"] == [29, 50] and rows["sft/r000"]["after"] == [34, 50]
    assert rows["sft/r000"]["in_interval"] and abs(rows["sft/r000"]["z"]) < 1.96
    assert not rows["habc/r001"]["in_interval"] and rows["habc/r001"]["z"] > 1.96


def test_compare_cli_writes_the_table_and_names_a_bad_file(tmp_path: Path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_results({"sft/r000": {0: (29, 50)}})))
    b.write_text(json.dumps(_results({"sft/r000": {0: (34, 50)}})))
    out = tmp_path / "rerun.md"
    assert main([str(a), str(b), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| sft/r000 | 0 | 29/50 = 58 % | 34/50 = 68 % |" in text
    assert "inside the earlier Wilson 95 % interval in 1 of 1 cells" in text

    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "bad.json"), str(b)])
    assert exit_info.value.code == 2
    assert "bad.json: no 'tracks' key" in capsys.readouterr().err
    with pytest.raises(ValueError, match="track: 'pixel'"):
        compare_cells(_results({}), _results({}), "pixel")
