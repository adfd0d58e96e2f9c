"""Per-frame HABC weights of a store from a checkpoint's critic (carried by the LeRobot export)."""

import numpy as np
import pytest
import torch
from test_train_round_store import TINY

from habc_core.contract import episode_dir
from habc_trainer import train_round as tr
from habc_trainer.round_cli import round_argv
from habc_trainer.store import EpisodeStore
from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

torch.set_num_threads(1)
TASK = "put the pencil in the pouch"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store (demos, a success, a failure, a saved rollout, an eval) and an HABC round 1."""
    root = tmp_path_factory.mktemp("fw")
    specs = [SyntheticSpec(f"demo{i}", "P" * 30, source="demo", round=0) for i in range(2)]
    specs += [
        SyntheticSpec("ok", "P" * 25, outcome="success"),
        SyntheticSpec("fail", "P" * 20, outcome="failure"),
        SyntheticSpec("saved", "P" * 8 + "H" * 12 + "P" * 10, outcome="success"),
        SyntheticSpec("trial", "P" * 15, source="eval", outcome="success"),
    ]
    for s in specs:
        s = SyntheticSpec(**{**s.__dict__, "cameras": (), "with_env_state": True})
        write_synthetic_episode(episode_dir(root / "bags", TASK, s.round, s.episode_id), s)
    ckpt = root / "ckpt"
    for rnd, method in ((0, "sft"), (1, "habc")):
        argv = round_argv(TINY, root / "bags", ckpt, rnd, method, {"steps_per_round": 3})
        assert tr.main(argv) == 0
    return root / "bags" / "store", ckpt / "habc" / "round_001"


def test_weights_follow_the_method_table_and_have_unit_mean(trained):
    from habc_trainer.frame_weights import store_frame_weights

    store_root, ckpt = trained
    store = EpisodeStore(store_root)
    weights = store_frame_weights(store, ckpt, batch_size=16)
    assert [len(w) for w in weights] == [e["length"] for e in store.episodes]
    by_id = {e["episode_id"]: w for e, w in zip(store.episodes, weights, strict=True)}
    assert np.isnan(by_id["trial"]).all()  # evaluation: never trained on
    for demo in ("demo0", "demo1"):
        assert np.all(by_id[demo] == 1.0)  # SFT samples weigh 1, never normalised
    assert np.all(by_id["fail"] == 0.0)  # a failed rollout's own frames teach nothing
    non_sft = np.concatenate([by_id["ok"], by_id["fail"], by_id["saved"]])
    assert np.isfinite(non_sft).all() and (non_sft >= 0).all()
    # Every frame of a rollout is a valid sample here (each has its own action; none is stale):
    # HABC's unit mean is over all of them, the failure's zeros included.
    assert np.mean(non_sft) == pytest.approx(1.0, abs=1e-4)
    assert by_id["ok"].std() > 0  # the gate differs from frame to frame
