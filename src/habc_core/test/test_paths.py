"""One config lookup (habc_core.paths) for the graph profiles and the sim config."""

from pathlib import Path

import pytest

from habc_core.paths import config_file, find_config

REPO = Path(__file__).resolve().parents[3]


def test_installed_copy_first_then_the_source_tree(tmp_path, monkeypatch):
    share = tmp_path / "share" / "habc_control" / "config"
    share.mkdir(parents=True)
    (share / "rollout.yaml").write_text("nodes: {}\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    assert config_file("rollout.yaml") == share / "rollout.yaml"
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    assert config_file("rollout.yaml") == REPO / "config" / "rollout.yaml"


def test_cwd_first_and_none_where_nothing_has_it(tmp_path, monkeypatch):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "sim.yaml").write_text("sim: {}\n")
    monkeypatch.chdir(tmp_path)
    assert find_config("sim.yaml", cwd=True, installed=False) == Path("config/sim.yaml").resolve()
    assert find_config("sim.yaml", installed=False) == REPO / "config" / "sim.yaml"
    assert find_config("no_such.yaml", cwd=True) is None
    with pytest.raises(FileNotFoundError, match="no_such.yaml: not installed"):
        config_file("no_such.yaml")
