"""train_round on real bags: synthetic episodes -> convert -> store streams -> rounds 0 and 1."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from habc_core import features as F
from habc_core.contract import episode_dir
from habc_trainer import train_round as tr
from habc_trainer.checkpoint import load_checkpoint, load_policy
from habc_trainer.round_cli import round_argv
from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

torch.set_num_threads(1)
TASK = "put the pencil in the pouch"
TINY = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    specs = [SyntheticSpec(f"demo{i}", "P" * 40, source="demo", round=0) for i in range(2)]
    specs += [
        SyntheticSpec("ok", "P" * 45, outcome="success"),
        SyntheticSpec("fail", "P" * 30, outcome="failure"),
        SyntheticSpec("saved", "P" * 10 + "H" * 15 + "P" * 20, outcome="success"),
    ]
    for s in specs:
        s = SyntheticSpec(**{**s.__dict__, "cameras": (), "with_env_state": True})
        write_synthetic_episode(episode_dir(root, TASK, s.round, s.episode_id), s)
    return root


def _cli(data_root, ckpt, rnd, method):
    overrides = {"steps_per_round": 3, "t_max": 100}
    return tr.main(round_argv(TINY, data_root, ckpt, rnd, method, overrides))


def test_rounds_train_on_the_converted_store(data_root, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert _cli(data_root, ckpt, 0, "sft") == 0
    assert _cli(data_root, ckpt, 1, "habc") == 0
    assert "converted 5" in capsys.readouterr().err  # bags converted once, then unchanged
    ck = load_checkpoint(ckpt / "habc" / "round_001")
    assert ck.model_index == 6  # 3 SFT steps + 3 HABC steps
    data = ck.manifest["data"]
    assert data["rounds"] == [0, 1] and data["episodes"] == 5
    assert ck.manifest["stream_sizes"]["int"] > 0  # the intervention became D_int windows
    policy = load_policy(ckpt / "habc" / "round_001")
    obs = {
        F.PROPRIO: np.zeros(ck.model_config.proprio_dim, np.float32),
        F.ENV_STATE: np.zeros(ck.model_config.env_state_dim, np.float32),
        F.TASK: TASK,
    }
    chunk = policy.infer(obs)["actions"]
    assert chunk.shape == (ck.model_config.horizon, ck.model_config.action_dim)
    assert np.isfinite(chunk).all()


def test_episodes_longer_than_t_max_are_flagged(data_root, tmp_path, capsys):
    overrides = {"steps_per_round": 1, "t_max": 20}
    rc = tr.main(round_argv(TINY, data_root, tmp_path, 0, "sft", overrides))
    assert rc == 0
    assert "episodes allow up to 45 steps but t_max is 20" in capsys.readouterr().err


def test_missing_previous_round_is_a_clear_error(data_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli(data_root, tmp_path / "none", 2, "habc")
    assert exit_info.value.code == 2
    assert "round_001" in capsys.readouterr().err


def _killed_round(ckpt, data_root, steps=2):
    """Round 0 (sft, 4 steps) on the bags converted now, killed after ``steps`` (the partial
    stays, as after a SIGKILL)."""
    cfg = tr.TrainConfig.from_yaml(
        TINY, method="sft", steps_per_round=4, checkpoint_every=2, t_max=100
    )
    store = data_root / "store"
    tr.convert_bags(data_root, store, cfg, progress=False)
    tr.run_round(cfg, tr.open_store(store, 0, cfg), ckpt, 0, max_steps=steps, progress=False)


def _cli4(data_root, ckpt, *extra):
    overrides = {"steps_per_round": 4, "checkpoint_every": 2, "t_max": 100}
    return tr.main(round_argv(TINY, data_root, ckpt, 0, "sft", overrides, extra))


def _bags(data_root, tmp_path):
    root = tmp_path / "bags"
    shutil.copytree(data_root, root, ignore=shutil.ignore_patterns("store"))
    return root


def _add_bag(root, episode_id, round_index=0):
    spec = SyntheticSpec(
        episode_id, "P" * 35, source="demo", round=round_index, cameras=(), with_env_state=True
    )
    write_synthetic_episode(episode_dir(root, TASK, round_index, episode_id), spec)


def test_new_bags_before_a_resume_are_refused_then_restart_round_trains_on_all(
    data_root, tmp_path, capsys
):
    root = _bags(data_root, tmp_path)
    _killed_round(tmp_path / "ck", root)
    _add_bag(root, "late_demo")
    with pytest.raises(SystemExit) as exit_info:
        _cli4(root, tmp_path / "ck")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "episodes 2 -> 3: 1 added" in err and "store revision 1 -> 2" in err
    assert "pass --restart-round" in err
    assert _cli4(root, tmp_path / "ck", "--restart-round") == 0
    ck = load_checkpoint(tmp_path / "ck" / "sft" / "round_000")
    assert ck.manifest["data"]["store_revision"] == 2 and ck.manifest["data"]["episodes"] == 3
    fresh = tmp_path / "fresh"
    assert _cli4(root, fresh, "--no-convert") == 0
    ref = load_checkpoint(fresh / "sft" / "round_000")
    for k in ref.model:  # the same weights as a round that never saw the old partial
        assert torch.equal(ref.model[k], ck.model[k]), k
    assert sorted(p.name for p in (tmp_path / "ck" / "sft").iterdir()) == ["round_000"]


def test_bags_of_a_later_round_do_not_stop_a_resume(data_root, tmp_path):
    root = _bags(data_root, tmp_path)
    assert _cli4(root, tmp_path / "ref") == 0  # uninterrupted, before the new bag
    _killed_round(tmp_path / "ck", root)
    _add_bag(root, "next_round", round_index=1)  # not in round 0's replay buffer
    assert _cli4(root, tmp_path / "ck") == 0
    ck = load_checkpoint(tmp_path / "ck" / "sft" / "round_000")
    ref = load_checkpoint(tmp_path / "ref" / "sft" / "round_000")
    assert ck.manifest["data"] == ref.manifest["data"]  # the revision it trained on: 1
    for k in ref.model:
        assert torch.equal(ref.model[k], ck.model[k]), k
