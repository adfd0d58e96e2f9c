"""train_round on real bags: synthetic episodes -> convert -> store streams -> rounds 0 and 1."""

from pathlib import Path

import numpy as np
import pytest
import torch

from habc_trainer import features as F
from habc_trainer import train_round as tr
from habc_trainer.checkpoint import load_checkpoint, load_policy
from habc_trainer.contract import episode_dir
from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

torch.set_num_threads(1)
TASK = "put the pencil in the pouch"
TINY = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    specs = [SyntheticSpec(f"demo{i}", "P" * 40, source="demo", round=0) for i in range(2)]
    specs += [SyntheticSpec("ok", "P" * 45, outcome="success"),
              SyntheticSpec("fail", "P" * 30, outcome="failure"),
              SyntheticSpec("saved", "P" * 10 + "H" * 15 + "P" * 20, outcome="success")]
    for s in specs:
        s = SyntheticSpec(**{**s.__dict__, "cameras": (), "with_env_state": True})
        write_synthetic_episode(episode_dir(root, TASK, s.round, s.episode_id), s)
    return root


def _cli(data_root, ckpt, rnd, method):
    return tr.main(["--config", str(TINY), "--data-root", str(data_root),
                    "--ckpt-root", str(ckpt), "--round", str(rnd), "--method", method,
                    "--set", "steps_per_round=3", "t_max=100", "--no-progress"])


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
    obs = {F.PROPRIO: np.zeros(ck.model_config.proprio_dim, np.float32),
           F.ENV_STATE: np.zeros(ck.model_config.env_state_dim, np.float32), F.TASK: TASK}
    chunk = policy.infer(obs)["actions"]
    assert chunk.shape == (ck.model_config.horizon, ck.model_config.action_dim)
    assert np.isfinite(chunk).all()


def test_episodes_longer_than_t_max_are_flagged(data_root, tmp_path, capsys):
    rc = tr.main(["--config", str(TINY), "--data-root", str(data_root), "--ckpt-root",
                  str(tmp_path), "--round", "0", "--method", "sft", "--no-progress",
                  "--set", "steps_per_round=1", "t_max=20"])
    assert rc == 0
    assert "episodes allow up to 45 steps but t_max is 20" in capsys.readouterr().err


def test_missing_previous_round_is_a_clear_error(data_root, tmp_path, capsys):
    assert _cli(data_root, tmp_path / "none", 2, "habc") == 2
    assert "round_001" in capsys.readouterr().err
