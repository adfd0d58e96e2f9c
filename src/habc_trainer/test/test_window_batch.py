"""The vectorised batch gather equals collating window by window, key for key and bit for bit."""

import numpy as np
import pytest
import torch

from habc_core.contract import episode_dir
from habc_trainer.convert import convert
from habc_trainer.episode import ExtractConfig
from habc_trainer.store import EpisodeStore
from habc_trainer.streams import StreamConfig, WindowStreams, collate
from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode
from habc_trainer.window_batch import gather_windows

TASK = "put the pencil in the pouch"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Demos, a takeover, a failure and a second task, over several shards, with images and
    env state; episodes shorter than the horizon so chunks run past their end."""
    root = tmp_path_factory.mktemp("wb")
    pix = {"cameras": ("top",), "image_hw": (24, 32), "with_env_state": True}
    specs = [
        SyntheticSpec("demo0", "P" * 30, source="demo", round=0, **pix),
        SyntheticSpec("demo1", "P" * 7, source="demo", round=0, task="fold the towel", **pix),
        SyntheticSpec("saved", "P" * 6 + "H" * 14 + "P" * 9, outcome="success", **pix),
        SyntheticSpec("fail", "P" * 11, outcome="failure", **pix),
    ]
    for s in specs:
        write_synthetic_episode(episode_dir(root / "bags", s.task, s.round, s.episode_id), s)
    convert(
        [root / "bags"],
        root / "store",
        ExtractConfig(cameras=("top",), image_size=16),
        progress=False,
        shard_frames=20,
    )
    return EpisodeStore(root / "store")


@pytest.mark.parametrize("image_size", [None, 8])
def test_gather_equals_collated_windows(store, image_size):
    assert len(store.manifest["shards"]) > 1  # windows come from several shards
    streams = WindowStreams(store, StreamConfig(horizon=12, next_stride=2, image_size=image_size))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, streams.num_frames, size=64)
    frames[:4] = [0, streams.num_frames - 1, 29, 30]  # episode ends and starts
    want = collate([streams.window(int(g)) for g in frames])
    got = gather_windows(streams, frames)
    assert list(got) == list(want)
    for key, value in want.items():
        if isinstance(value, list):
            assert got[key] == value, key
            continue
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert torch.equal(got[key].nan_to_num(-7.0), value.nan_to_num(-7.0)), key
    # the takeover reaches the mask, and chunks past an episode's end are padded and invalid
    assert got["intervention_mask"].any() and not got["action_valid"].all()


def test_sampling_uses_the_gather(store):
    streams = WindowStreams(store)
    a = streams.sample("sft", 16, np.random.default_rng(3))
    picks = streams.anchors["sft"][np.random.default_rng(3).integers(0, streams.size("sft"), 16)]
    b = collate([streams.window(int(g)) for g in picks])
    assert a["task"] == b["task"]
    assert all(torch.equal(a[k].nan_to_num(-7.0), b[k].nan_to_num(-7.0)) for k in b if k != "task")


@pytest.mark.parametrize("workers", [2, 3])
def test_a_parallel_conversion_writes_the_same_store(store, tmp_path, workers):
    """Two threads (and with 3 workers a helper process), the store written in bag order: the
    same episodes, the same bytes."""
    import os

    from habc_trainer.convert_pool import worker_count

    bags = store.root.parent / "bags"
    summary = convert(
        [bags], tmp_path / "par", ExtractConfig(cameras=("top",), image_size=16), workers=workers
    )
    assert summary.workers == workers and summary.converted == len(store)
    par = EpisodeStore(tmp_path / "par")
    assert [e["episode_id"] for e in par.episodes] == [e["episode_id"] for e in store.episodes]
    for i in range(len(store)):
        for key in store.keys:
            assert np.array_equal(par.array(key, i), store.array(key, i)), key
    # few bags: no helper process to start, the writing process's threads at most
    assert worker_count(0, 2) == min(2, os.cpu_count() or 1) and worker_count(0, 3) <= 2
    assert worker_count(3, 2) == 2 and worker_count(1, 50) == 1
    with pytest.raises(ValueError, match="workers"):
        worker_count(-1, 5)
