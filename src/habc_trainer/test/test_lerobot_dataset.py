"""Episode store -> LeRobotDataset v3 -> read back by LeRobot's own LeRobotDataset; and a
LeRobotDataset of demos -> D_SFT episodes of a store. Runs in the LeRobot venv only:

    make lerobot-env && .venv-lerobot/bin/python -m pytest -m lerobot
"""

from pathlib import Path

import numpy as np
import pytest

from habc_core import features as F
from habc_core.contract import episode_dir

pytestmark = pytest.mark.lerobot

TASK = "put the pencil in the pouch"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    from habc_trainer.convert import convert
    from habc_trainer.episode import ExtractConfig
    from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

    root = tmp_path_factory.mktemp("lr")
    specs = [
        SyntheticSpec("demo0", "P" * 12, source="demo", round=0, cameras=("top",)),
        SyntheticSpec(
            "saved", "P" * 4 + "H" * 5 + "P" * 3, outcome="success", round=1, cameras=("top",)
        ),
        SyntheticSpec("fail", "P" * 9, outcome="failure", round=1, cameras=("top",)),
    ]
    for s in specs:
        write_synthetic_episode(episode_dir(root / "bags", TASK, s.round, s.episode_id), s)
    convert([root / "bags"], root / "store", ExtractConfig(cameras=("top",), image_size=16))
    return root / "store"


def test_export_reads_back_in_lerobot_with_flags_outcomes_and_sources(store, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from habc_trainer.lerobot_dataset import export_store
    from habc_trainer.store import EpisodeStore

    summary = export_store(store, tmp_path / "ds", "habc/test", progress=False)
    st = EpisodeStore(store)
    assert summary["frames"] == st.num_frames == 33
    ds = LeRobotDataset("habc/test", root=tmp_path / "ds")
    assert len(ds) == 33 and ds.meta.total_episodes == 3 and ds.fps == 10
    by_episode: dict[int, list] = {}
    for k in range(len(ds)):
        item = ds[k]
        by_episode.setdefault(int(item["episode_index"]), []).append(item)
    for i, e in enumerate(st.episodes):
        frames = by_episode[i]
        assert frames[0]["task"] == TASK
        human = np.asarray(st.array(F.HUMAN, i))
        flags = np.array([float(f["complementary_info.is_intervention"]) for f in frames])
        np.testing.assert_array_equal(flags, human.any(axis=1).astype(float))
        per_arm = np.stack(
            [np.asarray(f["complementary_info.is_intervention_arm"]) for f in frames]
        )
        np.testing.assert_array_equal(per_arm, human.astype(float))
        success = float(e["outcome"] == "success")
        assert all(float(f["complementary_info.episode_success"]) == success for f in frames)
        assert {int(f["complementary_info.round"]) for f in frames} == {e["round"]}
        source = 0 if e["source"] == "demo" else 1
        assert {int(f["complementary_info.source"]) for f in frames} == {source}
        np.testing.assert_allclose(
            np.stack([np.asarray(f["action"]) for f in frames]), st.array(F.ACTION, i), atol=1e-6
        )
        assert float(frames[-1]["next.reward"]) == success and bool(frames[-1]["next.done"])
        image = np.asarray(frames[0]["observation.images.top"])
        assert image.shape == (3, 16, 16)  # LeRobot hands images as (C, H, W) floats


def test_import_turns_a_lerobot_dataset_into_demo_episodes(store, tmp_path):
    from habc_trainer.lerobot_dataset import ImportConfig, export_store, import_dataset
    from habc_trainer.store import EpisodeStore

    export_store(store, tmp_path / "ds", "habc/test", progress=False)
    cfg = ImportConfig(cameras=("top",), camera_keys=("observation.images.top",), image_size=16)
    summary = import_dataset(tmp_path / "ds", tmp_path / "store2", cfg)
    assert summary["frames"] == 33
    back, src = EpisodeStore(tmp_path / "store2"), EpisodeStore(store)
    assert [e["source"] for e in back.episodes] == ["demo"] * 3
    assert {e["outcome"] for e in back.episodes} == {"success"}
    for i in range(3):
        np.testing.assert_allclose(back.array(F.ACTION, i), src.array(F.ACTION, i), atol=1e-6)
        np.testing.assert_allclose(back.array(F.PROPRIO, i), src.array(F.PROPRIO, i), atol=1e-6)
        assert not np.asarray(back.array(F.HUMAN, i)).any()
        # Video is lossy (the synthetic frames are noise, the worst case): each picture comes
        # back much closer to its own frame than to the episode's other frames.
        got = back.array(F.image_key("top"), i).astype(int)
        want = src.array(F.image_key("top"), i).astype(int)
        own = np.abs(got - want).mean()
        others = np.abs(got - np.roll(want, 1, axis=0)).mean()
        assert own < 0.5 * others, (own, others)


def test_export_carries_a_checkpoints_weights_by_index(store, tmp_path):
    import json

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from habc_trainer import train_round as tr
    from habc_trainer.frame_weights import store_frame_weights
    from habc_trainer.lerobot_dataset import WEIGHTS_FILE, export_store
    from habc_trainer.round_cli import round_argv
    from habc_trainer.store import EpisodeStore

    tiny = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"
    bags, ckpt = store.parent / "bags", tmp_path / "ckpt"
    for rnd, method in ((0, "sft"), (1, "habc")):
        argv = round_argv(tiny, bags, ckpt, rnd, method, {"steps_per_round": 2})
        assert tr.main(argv) == 0  # converts the bags into bags/store (the tiny model's)
    trained = bags / "store"
    export_store(
        trained,
        tmp_path / "ds",
        "habc/w",
        weights_from=ckpt / "habc" / "round_001",
        progress=False,
    )
    want = np.concatenate(store_frame_weights(EpisodeStore(trained), ckpt / "habc" / "round_001"))
    ds = LeRobotDataset("habc/w", root=tmp_path / "ds")
    got = np.array([float(ds[k]["complementary_info.habc_weight"]) for k in range(len(ds))])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    keyed = json.loads((tmp_path / "ds" / "meta" / WEIGHTS_FILE).read_text())["by_index"]
    index = [int(ds[k]["index"]) for k in range(len(ds))]
    np.testing.assert_allclose([keyed[str(i)] for i in index], want, rtol=1e-6)
