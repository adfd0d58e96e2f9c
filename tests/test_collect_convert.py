"""Integration: the simulated collector's bags convert into the store and streams (no ROS)."""

from __future__ import annotations

import numpy as np

from habc_control.collect import main as collect
from habc_core import features as F
from habc_core.contract import find_episode_dirs, read_sidecar
from habc_trainer.convert import convert
from habc_trainer.episode import ExtractConfig
from habc_trainer.store import EpisodeStore
from habc_trainer.streams import WindowStreams


def test_collected_episodes_convert_with_consistent_labels(tmp_path):
    data, store_root = tmp_path / "data", tmp_path / "store"
    out = ["--out", str(data), "--obs", "state", "--quiet"]
    assert collect(["--demos", "1", *out]) == 0
    assert collect(["--rollouts", "2", "--round", "1", "--seed", "10", *out]) == 0
    summary = convert([data], store_root, ExtractConfig(cameras=()))
    assert summary.skipped == {} and summary.converted == 3, summary.format()

    store = EpisodeStore(store_root)
    sidecars = {read_sidecar(d).episode_id: read_sidecar(d) for d in find_episode_dirs(data)}
    streams = WindowStreams(store)
    assert streams.dims()["env_state_dim"] > 0  # state mode records /sim/env_state
    for k, i in enumerate(streams.episode_ids):
        e = store.episodes[i]
        meta = sidecars[e["episode_id"]]
        assert (e["source"], e["outcome"], e["round"]) == (meta.source, meta.outcome, meta.round)
        human = np.asarray(store.array(F.HUMAN, i)).any(axis=1)
        actions = np.asarray(store.array(F.ACTION, i))
        assert np.isfinite(actions).all() and actions.shape[1] == streams.dims()["action_dim"]
        s, end = streams._starts[k], streams._starts[k + 1]
        labeled = ~np.isnan(streams._label[s:end])
        if meta.source == "demo":
            assert human.all() and not labeled.any()
            continue
        assert human.any() == meta.intervened
        assert not (labeled & human).any()
        if human.any():
            assert (np.flatnonzero(labeled) > np.flatnonzero(human)[-1]).all()
            assert streams._int[s:end].any()  # the takeover makes intervention windows
        elif meta.outcome != "unknown":
            assert labeled.all()
    batch = streams.sample("sft", 4, np.random.default_rng(0))
    assert batch[F.ACTIONS].shape == (4, 50, streams.dims()["action_dim"])
    assert convert([data], store_root, ExtractConfig(cameras=())).converted == 0
