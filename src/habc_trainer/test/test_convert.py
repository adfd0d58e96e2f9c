"""Bags of every kind -> store -> streams with exactly the spec's labels; incremental reruns."""

from __future__ import annotations

import json
import textwrap
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from habc_core import contract as c
from habc_core import features as F
from habc_core import rostypes
from habc_core.bag_writer import EpisodeBagWriter
from habc_trainer.convert import convert, main
from habc_trainer.episode import ExtractConfig
from habc_trainer.store import EpisodeStore
from habc_trainer.streams import StreamConfig, WindowDataset, WindowStreams
from habc_trainer.synthetic import SyntheticSpec, expected_action, write_synthetic_episode

CFG = ExtractConfig(cameras=("top",), image_size=16)
STREAM_CFG = StreamConfig(horizon=8, intervention_window=8, min_human_steps=3)
NAN = float("nan")

EPISODES = {
    "demo": dict(pattern="B" * 20, source="demo"),
    "auto_success": dict(pattern="P" * 20),
    "auto_failure": dict(pattern="P" * 20, outcome="failure"),
    "fail_then_intervention": dict(pattern="P" * 6 + "H" * 6 + "P" * 8),
    "unknown": dict(pattern="P" * 5 + "R" * 5 + "P" * 5, outcome="unknown"),
    "sqlite": dict(pattern="P" * 10, storage="sqlite3"),
    "compressed": dict(pattern="P" * 4 + "B" * 4 + "P" * 4, outcome="failure", compressed=True),
}

_KILLED = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from habc_core.bag_writer import EpisodeBagWriter
    from habc_core.contract import EVENT_START
    from habc_trainer.synthetic import expected_action
    w = EpisodeBagWriter(sys.argv[1], flush_interval_ns=100_000_000).open()
    w.write_event(EVENT_START, 0, episode_id="killed", task="fold", source="rollout")
    for t in range(40):
        now = 1_000_000_000 + t * 100_000_000
        w.write_image("top", np.zeros((12, 16, 3), np.uint8), now)
        for a, arm in enumerate(("left", "right")):
            act = expected_action(t, a)
            w.write_joint_state(arm, np.append(np.zeros(6), act[9]), now)
            w.write_ee_pose(arm, act[:3], [0, 0, 0, 1], now)
            w.write_arm_command(arm, act[:9], act[9], now, authority=0, model_index=9)
    # Killed mid-episode: no END event (test_bag_recovery.py covers a torn bag that has one).
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, kill_when_ready):
    root = tmp_path_factory.mktemp("data")
    typestore = rostypes.make_typestore()
    for name, kw in EPISODES.items():
        spec = SyntheticSpec(name, image_hw=(12, 16), cameras=("top",), **kw)
        write_synthetic_episode(c.episode_dir(root, spec.task, 1, name), spec, typestore=typestore)
    kill_when_ready(_KILLED, str(root / "killed"))
    assert not (root / "killed" / c.BAG_METADATA_NAME).exists()
    junk = root / "corrupt"
    junk.mkdir()
    (junk / "corrupt.mcap").write_bytes(b"not an mcap file at all")
    return root


@pytest.fixture(scope="module")
def store_root(data_root, tmp_path_factory):
    store = tmp_path_factory.mktemp("store") / "store"
    mp = pytest.MonkeyPatch()

    def refuse(*_a, **_k):
        raise AssertionError("conversion must not need installed .msg files")

    # Custom types come only from the definitions inside the bags.
    mp.setattr(rostypes, "find_msg_dir", refuse)
    try:
        summary = convert([data_root], store, CFG)
    finally:
        mp.undo()
    assert summary.converted == len(EPISODES) + 1, summary.format()
    assert list(summary.skipped) == [str(data_root / "corrupt")]
    assert "corrupt.mcap" in summary.skipped[str(data_root / "corrupt")]
    assert summary.truncated == 1
    return store


def by_id(store: EpisodeStore) -> dict[str, int]:
    return {e["episode_id"]: i for i, e in enumerate(store.episodes)}


def test_store_holds_every_episode_with_its_outcome(store_root):
    store = EpisodeStore(store_root)
    facts = {e["episode_id"]: (e["source"], e["outcome"], e["truncated"]) for e in store.episodes}
    assert facts["demo"] == ("demo", "success", False)
    assert facts["unknown"] == ("rollout", "unknown", False)
    # Killed writer mid-episode: no sidecar, no END event -> recovered as unknown.
    assert facts["killed"] == ("rollout", "unknown", True)
    killed = store.episodes[by_id(store)["killed"]]
    assert 30 <= killed["length"] <= 40
    assert store.array(F.ACTION, by_id(store)["sqlite"]).shape == (10, 20)
    assert store.array(F.image_key("top"), 0).shape[1:] == (16, 16, 3)


def frames_of(streams: WindowStreams, stream: str, name: str) -> list[int]:
    k = streams.episode_ids.index(by_id(streams.store)[name])
    out = []
    for g in streams.anchors[stream]:
        kk, t = streams.locate(int(g))
        if kk == k:
            out.append(t)
    return out


def labels_of(streams: WindowStreams, name: str) -> list[float]:
    k = streams.episode_ids.index(by_id(streams.store)[name])
    s, e = streams._starts[k], streams._starts[k + 1]
    return streams._label[s:e].tolist()


def test_streams_carry_exactly_the_spec_labels(store_root):
    streams = WindowStreams(EpisodeStore(store_root), STREAM_CFG)
    r20 = list(range(20))
    assert frames_of(streams, "sft", "demo") == r20
    assert frames_of(streams, "auto", "demo") == [] and frames_of(streams, "int", "demo") == []
    assert np.isnan(labels_of(streams, "demo")).all()
    assert labels_of(streams, "auto_success") == [1.0] * 20
    assert labels_of(streams, "auto_failure") == [0.0] * 20
    # Failure, takeover, policy finishes successfully: only the post-intervention suffix.
    lab = labels_of(streams, "fail_then_intervention")
    assert np.isnan(lab[:12]).all() and lab[12:] == [1.0] * 8
    assert frames_of(streams, "auto", "fail_then_intervention") == list(range(6)) + list(
        range(12, 20)
    )
    assert frames_of(streams, "int", "fail_then_intervention") == list(range(1, 10))
    # Unknown outcome: nothing labeled, intervention windows still imitation data.
    assert np.isnan(labels_of(streams, "unknown")).all()
    assert frames_of(streams, "int", "unknown") == list(range(0, 8))
    assert np.isnan(labels_of(streams, "killed")).all()
    assert labels_of(streams, "compressed")[8:] == [0.0] * 4

    naive = WindowStreams(
        EpisodeStore(store_root),
        StreamConfig(horizon=8, intervention_window=8, min_human_steps=3, credit_mode="naive"),
    )
    assert labels_of(naive, "fail_then_intervention") == [1.0] * 20
    assert frames_of(naive, "auto", "fail_then_intervention") == r20


def test_window_sample_contents(store_root):
    streams = WindowStreams(EpisodeStore(store_root), STREAM_CFG)
    k = streams.episode_ids.index(by_id(streams.store)["fail_then_intervention"])
    g = int(streams._starts[k]) + 14  # 6 frames before the end
    w = streams.window(g)
    assert w[F.ACTIONS].shape == (8, 20) and w[F.ACTION_VALID].tolist() == [1] * 6 + [0] * 2
    assert not w[F.ACTIONS][6:].any()
    np.testing.assert_array_equal(
        w[F.ACTIONS][0], streams.store.array(F.ACTION, streams.episode_ids[k])[14]
    )
    assert w[F.OUTCOME_LABEL] == 1.0 and w[F.EFFICIENCY_TARGET]
    assert w[F.STEPS_TO_END] == 5 and w[F.FRAME_INDEX] == 14 and w[F.MODEL_INDEX] == 500
    np.testing.assert_array_equal(
        w[F.NEXT_OBS_PREFIX + F.PROPRIO],
        streams.store.array(F.PROPRIO, streams.episode_ids[k])[15],
    )
    last = streams.window(int(streams._starts[k + 1]) - 1)
    assert last[F.EPISODE_DONE] and last[F.TERMINAL_SUCCESS] and last[F.REWARD] == -1.0
    # M^int: left arm (dims 0..9) human on frames 6..11.
    w3 = streams.window(int(streams._starts[k]) + 3)
    mask = w3[F.INTERVENTION_MASK]
    assert mask[:, :10].any(axis=1).tolist() == [False] * 3 + [True] * 5
    assert not mask[:, 10:].any()
    fail = by_id(streams.store)["auto_failure"]
    kf = streams.episode_ids.index(fail)
    end = streams.window(int(streams._starts[kf + 1]) - 1)
    assert end[F.REWARD] == -100.0 and end[F.MC_RETURN] == -100.0 and not end[F.TERMINAL_SUCCESS]


def test_sampling_batches_and_dataloader(store_root):
    import torch

    streams = WindowStreams(EpisodeStore(store_root), STREAM_CFG)
    rng = np.random.default_rng(0)
    batch = streams.sample("auto", 16, rng)
    assert batch[F.ACTIONS].shape == (16, 8, 20) and len(batch[F.TASK]) == 16
    assert batch[F.OBS_PREFIX + F.image_key("top")].dtype == torch.uint8
    assert (batch[F.SOURCE] == F.SOURCE_ROLLOUT).all()
    loader = torch.utils.data.DataLoader(WindowDataset(streams, "sft"), batch_size=5, shuffle=True)
    first = next(iter(loader))
    assert first[F.ACTIONS].shape == (5, 8, 20) and (first[F.SOURCE] == F.SOURCE_DEMO).all()
    stats = streams.norm_arrays()
    store = streams.store
    every = np.concatenate([store.array(F.ACTION, i) for i in streams.episode_ids])
    np.testing.assert_allclose(stats[F.ACTION]["mean"], every.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats[F.ACTION]["std"], every.std(0), atol=1e-5)
    np.testing.assert_array_equal(stats[F.PROPRIO]["max"].shape, (20,))
    assert streams.dims() == {"proprio_dim": 20, "action_dim": 20, "env_state_dim": 0}


def test_streams_resize_images_to_the_model_resolution(store_root):
    streams = WindowStreams(EpisodeStore(store_root), StreamConfig(horizon=8, image_size=8))
    w = streams.window(0)
    assert w[F.OBS_PREFIX + F.image_key("top")].shape == (8, 8, 3)
    assert w[F.NEXT_OBS_PREFIX + F.image_key("top")].dtype == np.uint8
    with pytest.raises(ValueError, match="cameras"):
        WindowStreams(EpisodeStore(store_root), StreamConfig(cameras=("left_wrist",)))


def test_rerun_only_processes_new_or_changed_bags(data_root, store_root, tmp_path):
    again = convert([data_root], store_root, CFG)
    assert (again.converted, again.unchanged) == (0, len(EPISODES) + 1)
    assert "unchanged since last run" in again.skipped[str(data_root / "corrupt")]
    # Relabel one episode (the sidecar changes) and add a new one.
    bag = next(
        Path(e["bag_dir"])
        for e in EpisodeStore(store_root).episodes
        if e["episode_id"] == "auto_failure"
    )
    c.write_sidecar(bag, c.read_sidecar(bag).replace(outcome="success"))
    spec = SyntheticSpec("late", "P" * 7, image_hw=(12, 16), cameras=("top",))
    write_synthetic_episode(data_root / "late", spec)
    third = convert([data_root], store_root, CFG)
    assert third.converted == 2 and third.unchanged == len(EPISODES)
    store = EpisodeStore(store_root)
    assert len(store) == len(EPISODES) + 2
    outcome = {e["episode_id"]: e["outcome"] for e in store.episodes}
    assert outcome["auto_failure"] == "success" and outcome["late"] == "success"
    assert store.revision == 2
    with pytest.raises(RuntimeError, match="built with"):
        convert([data_root], store_root, ExtractConfig(cameras=("top",), image_size=32))


def test_cli_prints_summary(data_root, tmp_path, capsys):
    rc = main(
        [
            "--data-root",
            str(data_root),
            "--store",
            str(tmp_path / "s"),
            "--cameras",
            "top",
            "--image-size",
            "16",
            "--no-progress",
            "--summary-json",
            str(tmp_path / "s.json"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "rollout/failure" in out and "skipped" in out and "corrupt" in out
    assert (tmp_path / "s.json").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-root", str(tmp_path / "nope"), "--store", str(tmp_path / "t")])
    assert exit_info.value.code == 2
    nope = str(tmp_path / "nope")
    assert (
        capsys.readouterr().err == f"habc-convert: error: --data-root {nope!r}: does not exist\n"
    )


@pytest.mark.slow
def test_conversion_memory_does_not_grow_with_episode_count(tmp_path):
    typestore = rostypes.make_typestore()
    cfg = ExtractConfig(cameras=("top",), image_size=64)

    def make(root: Path, n: int) -> Path:
        for i in range(n):
            spec = SyntheticSpec(f"e{i}", "P" * 60, image_hw=(96, 128), cameras=("top",))
            write_synthetic_episode(root / f"e{i}", spec, typestore=typestore)
        return root

    convert([make(tmp_path / "warm", 2)], tmp_path / "s_warm", cfg)  # imports, type caches
    peaks = {}
    for n in (4, 16):
        root = make(tmp_path / f"d{n}", n)
        tracemalloc.start()
        convert([root], tmp_path / f"s{n}", cfg)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # One episode's arrays are ~0.8 MB; holding all 16 would add > 10 MB.
    assert peaks[16] < 1.25 * peaks[4] + 1_000_000, peaks


def test_open_streams_follows_the_train_config(store_root):
    from habc_trainer.config import TrainConfig
    from habc_trainer.store_streams import open_streams

    recap = open_streams(store_root, 1, TrainConfig(method="imit_recap", model_preset="tiny"))
    assert recap.cfg.credit_mode == "naive" and recap.cfg.horizon == 10
    assert recap.cfg.heldout_fraction > 0
    aware = open_streams(store_root, 1, TrainConfig(method="habc", model_preset="tiny"))
    assert aware.cfg.credit_mode == "intervention_aware" and aware.size("auto_heldout") == 0
    # Held-out windows are taken away from training, never duplicated.
    naive_all = WindowStreams(EpisodeStore(store_root), StreamConfig(credit_mode="naive"))
    assert recap.size("auto") + recap.size("auto_heldout") == naive_all.size("auto")
    half = WindowStreams(
        EpisodeStore(store_root), StreamConfig(credit_mode="naive", heldout_fraction=0.5)
    )
    assert half.size("auto_heldout") > 0
    assert half.size("auto") + half.size("auto_heldout") == naive_all.size("auto")
    stats = aware.norm_stats()
    assert stats[F.ACTION].mean.shape == (20,) and stats[F.PROPRIO].std.shape == (20,)
    # Round filter: round 0 holds only the killed episode (its START event says round 0).
    early = open_streams(store_root, 0, TrainConfig(model_preset="tiny"))
    assert [EpisodeStore(store_root).episodes[i]["episode_id"] for i in early.episode_ids] == [
        "killed"
    ]


def test_one_writer_at_a_time(tmp_path):
    import fcntl

    from habc_trainer.store import LOCK_NAME, StoreWriter

    writer = StoreWriter(tmp_path / "s", CFG.fingerprint())
    with open(tmp_path / "s" / LOCK_NAME) as fh:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        writer.close()
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on close


def write_arm_bag(
    bag: Path, typestore, *, requests: bool, right_log_ns=0, right_stamp_ns=0, hole=()
) -> Path:
    """6 ticks at 10 Hz; the left arm's first two commands were clamped (SAFETY_WORKSPACE)
    after a request 1 cm further in x; the right arm logged / stamped late by the offsets."""
    with EpisodeBagWriter(bag, typestore=typestore) as w:
        w.write_event(c.EVENT_START, 0, episode_id=bag.name, task="fold", source="rollout")
        for t in range(6):
            now = 1_000_000_000 + t * 100_000_000
            w.write_image("top", np.zeros((12, 16, 3), np.uint8), now)
            for a, arm in enumerate(("left", "right")):
                w.write_joint_state(arm, np.append(np.zeros(6), 0.04), now)
                w.write_ee_pose(arm, expected_action(t, a)[:3], [0, 0, 0, 1], now)
            for a, arm in enumerate(("left", "right")):
                if arm == "right" and t in hole:
                    continue
                act = expected_action(t, a)
                bits = c.SAFETY_WORKSPACE if arm == "left" and t < 2 else 0
                log = now + (right_log_ns if arm == "right" else 0)
                stamp = now + (right_stamp_ns if arm == "right" else 0)
                if requests:
                    req = act + np.eye(10)[0] * (0.01 if bits else 0.0)
                    msg = w._arm_command(arm, req[:9], req[9], stamp, 0, 3, c.MODE_EE, 0)
                    w.write(c.command_request_topic(arm), msg, log - 1_000_000)
                msg = w._arm_command(arm, act[:9], act[9], stamp, 0, 3, c.MODE_EE, bits)
                w.write(c.command_topic(arm), msg, log)
        w.write_event(
            c.EVENT_END, 2e9, episode_id=bag.name, task="fold", source="rollout", outcome="success"
        )
    return bag


def test_a_store_mixing_bags_with_and_without_requests(tmp_path):
    typestore = rostypes.make_typestore()
    root = tmp_path / "data"
    # Converted in name order: the optional key appears in the middle of a shard, then is
    # missing again.
    skew = 30_000_000  # own stamps: paired by log time
    write_arm_bag(
        root / "a_old", typestore, requests=False, right_log_ns=skew, right_stamp_ns=skew
    )
    write_arm_bag(root / "b_req", typestore, requests=True, right_log_ns=40_000_000)
    write_arm_bag(root / "c_old", typestore, requests=False, right_log_ns=20_000_000)
    summary = convert([root], tmp_path / "store", CFG)
    assert summary.converted == 3 and not summary.skipped
    assert summary.paired_by == {"stamp": 2, "log_time": 1}
    assert summary.skew_median_ms == pytest.approx(30.0) and summary.skew_max_ms == pytest.approx(
        40
    )
    assert (summary.arm_frames, summary.safety_arm_frames) == (36, 6)
    assert summary.safety_by_flag["workspace"] == 6 and summary.safety_by_flag["step"] == 0
    assert (summary.request_arm_frames, summary.request_differs_arm_frames) == (12, 2)
    facts = summary.to_dict()
    assert facts["safety_pct"] == pytest.approx(100 * 6 / 36)
    assert facts["request_differs_pct"] == pytest.approx(100 * 2 / 12)
    json.dumps(facts)
    text = summary.format()
    assert "2 by stamp, 1 by log time" in text and "workspace 16.7%" in text
    assert "requested != executed on 16.7% of 12 arm-frames" in text

    store = EpisodeStore(tmp_path / "store")
    ids = by_id(store)
    old, req, late = ids["a_old"], ids["b_req"], ids["c_old"]
    assert store.has(F.REQUESTED_ACTION, req) and not store.has(F.REQUESTED_ACTION, old)
    with pytest.raises(KeyError, match="recorded without it"):
        store.array(F.REQUESTED_ACTION, late)
    requested = np.asarray(store.array(F.REQUESTED_ACTION, req))
    executed = np.asarray(store.array(F.ACTION, req))
    np.testing.assert_allclose(
        requested[:, 0] - executed[:, 0], [0.01, 0.01, 0, 0, 0, 0], atol=1e-6
    )
    np.testing.assert_array_equal(requested[:, 10:], executed[:, 10:])
    # Every other array keeps its offsets around the fill.
    for i in (old, req, late):
        assert np.asarray(store.array(F.SAFETY, i))[:, 0].tolist() == [2, 2, 0, 0, 0, 0]
        np.testing.assert_allclose(
            np.asarray(store.array(F.ACTION, i))[:, 10:],
            np.stack([expected_action(t, 1) for t in range(6)]),
            rtol=1e-6,
        )
    entry = store.episodes[old]
    assert entry["command_pairing"] == "log_time" and entry["dropped_trailing_frames"] == 0
    assert entry["command_skew_median_ms"] == pytest.approx(30.0)
    assert store.episodes[req]["optional_keys"] == [F.REQUESTED_ACTION]
    streams = WindowStreams(
        store, StreamConfig(horizon=4, intervention_window=4, min_human_steps=1)
    )
    batch = streams.sample("auto", 8, np.random.default_rng(0))
    assert batch[F.ACTIONS].shape == (8, 4, 20)


def test_cli_max_command_gap_and_skip_reasons(tmp_path, capsys):
    typestore = rostypes.make_typestore()
    bag = write_arm_bag(
        tmp_path / "data" / "holey", typestore, requests=False, right_stamp_ns=1, hole=(1, 2, 3)
    )
    args = ["--data-root", str(tmp_path / "data"), "--cameras", "top", "--no-progress"]
    assert main([*args, "--store", str(tmp_path / "s1")]) == 0
    out = capsys.readouterr().out
    # Tick 2 is 0.2 s from the nearest right command: a hole, named with its time.
    assert f"skipped {bag}: {bag}" in out
    assert "/right_arm/command @ t=1.200s" in out and "no right command within 0.1s" in out
    assert main([*args, "--store", str(tmp_path / "s2"), "--max-command-gap", "0.25"]) == 0
    assert "converted 1 " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--store", str(tmp_path / "s3"), "--max-command-gap", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "habc-convert: error: argument --max-command-gap: must be > 0, got 0\n"
    )


def test_a_store_of_older_arrays_is_refused(tmp_path):
    typestore = rostypes.make_typestore()
    write_arm_bag(tmp_path / "data" / "a", typestore, requests=False)
    convert([tmp_path / "data"], tmp_path / "store", CFG)
    manifest_path = tmp_path / "store" / "store.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["extract"]["arrays"]  # what a store built before `safety` existed says
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match="built with .* --rebuild"):
        convert([tmp_path / "data"], tmp_path / "store", CFG)


def test_a_refused_episode_leaves_the_open_shard_aligned(tmp_path):
    """An episode whose arrays disagree in length is refused before any of them is written, so
    the episodes after it in the same shard read back exactly."""
    import dataclasses

    from habc_core.features import ACTION
    from habc_trainer.episode import ExtractConfig, extract_episode
    from habc_trainer.store import EpisodeStore, StoreError, StoreWriter

    extract = ExtractConfig(cameras=())
    episodes = []
    for i, pattern in enumerate(["P" * 12, "H" * 4 + "P" * 4]):  # different frames per key
        spec = SyntheticSpec(f"e{i}", pattern, image_hw=(12, 16), cameras=("top",))
        bag = c.episode_dir(tmp_path / "data", spec.task, 1, spec.episode_id)
        write_synthetic_episode(bag, spec)
        episodes.append(extract_episode(bag, extract))
    good, other = episodes
    key = list(good.arrays)[-1]  # the last one written: every other key's file is ahead
    assert key != ACTION
    broken = dataclasses.replace(good, arrays={**good.arrays, key: good.arrays[key][:-3]})
    with StoreWriter(tmp_path / "store", extract.fingerprint()) as writer:
        with pytest.raises(StoreError, match=f"{key} has {good.length - 3} frames"):
            writer.add(broken, [])
        writer.add(other, [])
    store = EpisodeStore(tmp_path / "store")
    assert len(store) == 1
    for k, arr in other.arrays.items():
        np.testing.assert_array_equal(store.array(k, 0), arr)


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_a_pool_yields_every_bag_in_order_whoever_extracts_it(tmp_path, workers):
    """The writer's threads extract bags while a helper is busy (or still starting): whichever
    thread of whichever process did a bag, the results come in bag order, a bad bag's reason
    in its place (2 workers: two threads; 3: and a helper; 5: two helpers of two threads)."""
    from habc_trainer.convert_pool import extracted

    typestore = rostypes.make_typestore()
    bags = []
    for i in range(9):
        spec = SyntheticSpec(f"e{i}", "P" * (5 + i))
        write_synthetic_episode(tmp_path / f"e{i}", spec, typestore=typestore)
        bags.append(tmp_path / f"e{i}")
    (tmp_path / "e4" / "e4.mcap").write_bytes(b"not a bag")
    cfg = ExtractConfig(cameras=())
    got = [
        (ep.info.episode_id if ep else None, reason)
        for ep, reason in extracted(bags, cfg, workers)
    ]
    assert [g[0] for g in got] == [f"e{i}" if i != 4 else None for i in range(9)]
    assert got[4][1] and "e4" in got[4][1]


def _short_bags(root, n: int) -> list:
    """`n` bags of 6 frames, e0 .. e{n-1}, without cameras."""
    typestore = rostypes.make_typestore()
    for i in range(n):
        write_synthetic_episode(
            root / f"e{i}", SyntheticSpec(f"e{i}", "P" * 6), typestore=typestore
        )
    return [root / f"e{i}" for i in range(n)]


def test_a_pool_closed_early_leaves_no_process_behind(tmp_path):
    import multiprocessing

    from habc_trainer.convert_pool import extracted

    bags = _short_bags(tmp_path, 6)
    results = extracted(bags, ExtractConfig(cameras=()), 3)  # two threads here, a helper
    episode, _reason = next(results)
    assert episode.info.episode_id == "e0"
    results.close()  # e.g. the writer failed on the first episode
    assert multiprocessing.active_children() == []
    assert [t.name for t in threading.enumerate() if t.name.startswith("convert-")] == []


def test_a_thread_that_fails_is_an_error_not_a_hang(tmp_path, monkeypatch):
    """extract_or_reason turns every error of a bag into a reason; anything else that ends an
    extraction thread (here an interrupt) must reach the writer instead of leaving it waiting
    for that bag forever."""
    from habc_trainer import convert_pool

    bags = _short_bags(tmp_path, 5)
    real = convert_pool.extract_or_reason

    def interrupted(bag, cfg):
        if bag.name == "e2":
            raise KeyboardInterrupt
        return real(bag, cfg)

    monkeypatch.setattr(convert_pool, "extract_or_reason", interrupted)
    got = []
    with pytest.raises(RuntimeError, match="an extraction thread failed"):
        for episode, _reason in convert_pool.extracted(bags, ExtractConfig(cameras=()), 2):
            got.append(episode.info.episode_id)
    assert got == [f"e{i}" for i in range(len(got))] and "e2" not in got


def test_a_helper_that_died_is_an_error_naming_the_bag_waited_for(tmp_path):
    import multiprocessing
    from types import SimpleNamespace

    from habc_trainer.convert_pool import _receive

    mine, theirs = multiprocessing.get_context("spawn").Pipe()
    dead = SimpleNamespace(exitcode=-9, is_alive=lambda: False)
    with pytest.raises(
        RuntimeError, match=r"exit codes \[-9\]\) while the writer waited for .*e3"
    ):
        _receive([mine], {}, [dead], tmp_path / "e3")  # nothing sent within the poll


def test_a_failed_background_sync_fails_the_seal_and_publishes_nothing(tmp_path, monkeypatch):
    """The shard's files are synced on a thread while episodes are added; a disk error there
    must surface when the shard is sealed, before the manifest names it."""
    import errno
    import os

    from habc_trainer.episode import extract_episode
    from habc_trainer.store import EpisodeStore, StoreWriter

    extract = ExtractConfig(cameras=())
    episodes = []
    for i in range(3):
        write_synthetic_episode(tmp_path / "data" / f"e{i}", SyntheticSpec(f"e{i}", "P" * 8))
        episodes.append(extract_episode(tmp_path / "data" / f"e{i}", extract))
    synced = []

    def failing_sync(fd):
        synced.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing_sync)
    writer = StoreWriter(tmp_path / "store", extract.fingerprint())
    with pytest.raises(OSError, match="Input/output error"):
        with writer:
            for ep in episodes:
                writer.add(ep, [])
    assert synced  # the sync ran off the writing thread, and its error was not lost
    assert len(EpisodeStore(tmp_path / "store")) == 0


_KILLED_WRITER = """
import os, signal, sys, time
from pathlib import Path
from habc_trainer.convert_pool import extracted
from habc_trainer.episode import ExtractConfig
import multiprocessing
if __name__ == "__main__":
    bags = sorted(Path(sys.argv[1]).iterdir())
    results = extracted(bags, ExtractConfig(cameras=()), 3)  # a helper with one thread
    next(results)
    time.sleep(4)  # the helper takes every credit left and waits for one the writer holds
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited (PID 1 may not reap it here)


def test_helpers_exit_when_the_writer_is_killed(tmp_path):
    """The writer SIGKILLed mid-conversion (a crash, an OOM kill): its helpers exit on their
    own instead of waiting forever for a credit the writer would release."""
    import subprocess
    import sys
    import time

    typestore = rostypes.make_typestore()
    for i in range(12):
        write_synthetic_episode(
            tmp_path / "bags" / f"e{i:02d}", SyntheticSpec(f"e{i}", "P" * 6), typestore=typestore
        )
    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "bags")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    helpers = [int(p) for p in out.stdout.split()]
    assert helpers, out.stderr
    deadline = time.monotonic() + 15
    while any(_running(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(p) for p in helpers)
