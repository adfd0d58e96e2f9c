"""SFT's loss per stream and filtered BC's data, on a small synthetic store."""

import numpy as np
import pytest
import torch

from habc_core.contract import episode_dir
from habc_trainer import diagnostics as D
from habc_trainer.convert import convert
from habc_trainer.episode import ExtractConfig
from habc_trainer.models.config import model_preset
from habc_trainer.models.policy import FlowPolicy
from habc_trainer.store import EpisodeStore
from habc_trainer.streams import StreamConfig, WindowStreams
from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

torch.set_num_threads(1)
TASK = "put the pencil in the pouch"
# name: (pattern, source, outcome); P policy, H human (left arm)
EPISODES = {
    "demo": ("P" * 40, "demo", "success"),
    "ok": ("P" * 45, "rollout", "success"),  # autonomous success
    "fail": ("P" * 30, "rollout", "failure"),  # autonomous failure
    "saved": ("P" * 10 + "H" * 15 + "P" * 20, "rollout", "success"),  # recovered, handed back
    "lost": ("P" * 10 + "H" * 15 + "P" * 5, "rollout", "failure"),  # handed back, failed
}


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    for name, (pattern, source, outcome) in EPISODES.items():
        spec = SyntheticSpec(
            name,
            pattern,
            source=source,
            outcome=outcome,
            round=0 if source == "demo" else 1,
            cameras=(),
            with_env_state=True,
        )
        write_synthetic_episode(episode_dir(root, TASK, spec.round, name), spec)
    store = root / "store"
    convert([root], store, ExtractConfig(cameras=()))
    return WindowStreams(EpisodeStore(store), StreamConfig(horizon=10, cameras=()))


def _frames(streams, name):
    """Global frame ids of one episode, by its episode id."""
    for k, i in enumerate(streams.episode_ids):
        if streams.store.episodes[i]["episode_id"] == name:
            start = sum(streams.store.episodes[j]["length"] for j in streams.episode_ids[:k])
            return set(range(start, start + len(EPISODES[name][0])))
    raise KeyError(name)


def test_split_anchors_follows_the_trainers_credit(streams):
    split = D.split_anchors(streams)
    assert set(split) == set(D.LOSS_STREAMS)
    f = {name: _frames(streams, name) for name in EPISODES}
    assert set(split["demo"].tolist()) == f["demo"]
    # every frame of the autonomous success, plus the recovered rollout's handed-back suffix
    assert f["ok"] <= set(split["auto_success"].tolist())
    saved_suffix = set(split["auto_success"].tolist()) & f["saved"]
    assert saved_suffix and min(saved_suffix) - min(f["saved"]) >= 25
    assert set(split["auto_failure"].tolist()) >= f["fail"]
    # the recovered rollout's intervention windows are int_success, the lost one's int_failure
    assert set(split["int_success"].tolist()) <= f["saved"] and len(split["int_success"])
    assert set(split["int_failure"].tolist()) <= f["lost"] and len(split["int_failure"])
    # every window lands in exactly one stream
    everything = np.concatenate(list(split.values()))
    assert len(everything) == len(set(everything.tolist()))


def _policy(streams):
    d = streams.dims()
    cfg = model_preset("tiny").with_dims(
        proprio_dim=d["proprio_dim"], action_dim=d["action_dim"], env_state_dim=d["env_state_dim"]
    )
    torch.manual_seed(0)
    return FlowPolicy(cfg, streams.norm_stats())


def test_stream_losses_are_fixed_draws_per_stream(streams):
    policy = _policy(streams)
    split = D.split_anchors(streams)
    sources = {name: (streams, split[name]) for name in ("demo", "auto_success", "auto_failure")}
    sources["empty"] = (streams, np.zeros(0, dtype=np.int64))
    rows = D.stream_losses(policy, sources, windows=6, seed=3)
    assert [r.stream for r in rows] == ["demo", "auto_success", "auto_failure", "empty"]
    for r in rows[:3]:
        assert r.samples == 6 and r.windows == len(split[r.stream])
        assert r.mean > 0 and r.sem >= 0
    assert rows[3].to_dict() == {
        "stream": "empty",
        "windows": 0,
        "samples": 0,
        "mean": None,
        "sem": None,
    }
    # the same seed gives the same numbers, and a stream's number does not depend on the others
    again = D.stream_losses(policy, {"auto_failure": sources["auto_failure"]}, windows=6, seed=3)
    assert again[0].mean == pytest.approx(rows[2].mean, rel=1e-6)
    assert policy.training  # the caller's mode is restored


def test_success_only_keeps_the_frames_filtered_bc_imitates(streams):
    view = D.success_only(streams)
    split = D.split_anchors(streams)
    assert sorted(view.anchors["auto"].tolist()) == sorted(split["auto_success"].tolist())
    assert view.size("sft") == streams.size("sft") and view.size("int") == streams.size("int")
    assert streams.size("auto") > view.size("auto")  # the original is untouched
    batch = view.sample("auto", 16, np.random.default_rng(0))
    assert (batch["outcome_label"] == 1.0).all() and not batch["intervention_window"].any()
