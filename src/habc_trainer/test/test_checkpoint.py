"""Checkpoint round trips: weights, optimiser state, stats, configs; no pickle. Integrity:
every file hashed and checked at load; world-readable; a crash never leaves no valid copy."""

import json
import os
import shutil
import stat
import warnings

import numpy as np
import pytest
import torch

from habc_core import features as F
from habc_trainer import checkpoint as C
from habc_trainer.checkpoint import (
    CheckpointError,
    CheckpointWarning,
    TrainerState,
    discard_checkpoint,
    load_checkpoint,
    load_policy,
    recover_checkpoint,
    restore_learner,
    save_checkpoint,
)
from habc_trainer.checkpoint_files import ALL_FILES
from habc_trainer.config import TrainConfig
from habc_trainer.models.example import SyntheticStreams, make_example_obs
from habc_trainer.train_round import batch_counts, draw_batch
from habc_trainer.update import StepContext, build_learner, update

torch.set_num_threads(1)


def _trained(tmp_path):
    cfg = TrainConfig(
        method="habc", model_preset="tiny", batch_size=16, warmup_steps=0, lr_warmup_steps=0
    )
    mc = cfg.model_config().with_dims(proprio_dim=6, action_dim=4, env_state_dim=3)
    streams = SyntheticStreams(mc, per_stream=16)
    torch.manual_seed(0)
    learner = build_learner(cfg, mc, streams.norm_stats())
    rng = np.random.default_rng(0)
    counts = batch_counts((0.25, 0.25, 0.5), [16, 16, 16], 16)
    for i in range(2):
        update(
            learner,
            draw_batch(streams, counts, rng),
            cfg,
            StepContext(i, 0),
            torch.Generator().manual_seed(i),
        )
    gen = torch.Generator().manual_seed(5)
    state = TrainerState(
        round_index=0,
        step_in_round=2,
        model_index=learner.model_index,
        recap_epsilon=0.25,
        np_rng_states=[rng.bit_generator.state],
        torch_rng_states=[gen.get_state()],
    )
    path = save_checkpoint(tmp_path / "ck", learner, cfg, state, {"episodes": 3})
    return cfg, mc, learner, path


def test_round_trip_restores_weights_optimisers_stats_and_state(tmp_path):
    cfg, mc, learner, path = _trained(tmp_path)
    ckpt = load_checkpoint(path)
    assert ckpt.model_config == mc and ckpt.train_config == cfg
    assert ckpt.manifest == {"episodes": 3} and ckpt.model_index == 2
    assert load_policy(path).model_index == 2
    st = ckpt.trainer_state()
    assert (st.step_in_round, st.recap_epsilon) == (2, 0.25)
    assert torch.equal(st.torch_rng_states[0], torch.Generator().manual_seed(5).get_state())
    assert st.np_rng_states[0]["bit_generator"] == "PCG64"
    back = restore_learner(ckpt, cfg)
    for name, module in learner.modules().items():
        for (k, a), b in zip(
            module.state_dict().items(), back.modules()[name].state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), f"{name}.{k}"
    for name, opt in learner.optimizers().items():
        a, b = opt.state_dict()["state"], back.optimizers()[name].state_dict()["state"]
        assert a.keys() == b.keys()
        for i in a:
            for k in a[i]:
                assert torch.equal(torch.as_tensor(a[i][k]), torch.as_tensor(b[i][k]))
    for key in (F.PROPRIO, F.ACTION, F.ENV_STATE):
        assert np.array_equal(back.policy.stats[key].mean, learner.policy.stats[key].mean)


def test_loaded_policy_infers_exactly_like_the_trained_one(tmp_path):
    _, mc, learner, path = _trained(tmp_path)
    obs = make_example_obs(mc, np.random.default_rng(1))
    policy = load_policy(path)
    a = learner.policy.infer(obs, generator=torch.Generator().manual_seed(0))["actions"]
    b = policy.infer(obs, generator=torch.Generator().manual_seed(0))["actions"]
    np.testing.assert_array_equal(a, b)


def test_checkpoint_holds_no_pickle(tmp_path):
    _, _, _, path = _trained(tmp_path)
    names = sorted(p.name for p in path.iterdir())
    assert names == [
        "README.md",
        "checksums.json",
        "config.json",
        "config.yaml",
        "manifest.json",
        "model.safetensors",
        "optim.safetensors",
        "rng.safetensors",
        "trainer.json",
    ]
    assert not list(tmp_path.glob(".ck.*"))  # temp dir renamed away


def test_checkpoint_describes_itself_in_json_and_a_model_card(tmp_path):
    import json

    _, _, _, path = _trained(tmp_path)
    doc = json.loads((path / "config.json").read_text())
    ck = load_checkpoint(path)
    assert doc["format"] == "habc-checkpoint" and doc["actor"] == "flow"
    assert doc["model_index"] == ck.model_index and doc["method"] == ck.train_config.method
    assert doc["model"]["horizon"] == ck.model_config.horizon
    assert doc["train"] == ck.train_config.to_dict()
    card = (path / "README.md").read_text()
    assert f"method `{ck.train_config.method}`" in card and "load_policy" in card


def test_missing_file_is_a_clear_error(tmp_path):
    _, _, _, path = _trained(tmp_path)
    (path / "optim.safetensors").unlink()
    with pytest.raises(CheckpointError, match="optim.safetensors: missing"):
        load_checkpoint(path)


# --- integrity: sha256 of every file, checked at every load ---

FILES = ALL_FILES
# A pickle of {"a": 1} (protocol 2), and one that would run `touch` if anything unpickled it.
PICKLE = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One checkpoint, written once; tests work on copies (``_copy``)."""
    return _trained(tmp_path_factory.mktemp("saved"))[3]


def _copy(saved, tmp_path, name="ck"):
    dst = tmp_path / "root" / name
    shutil.copytree(saved, dst)
    return dst


def _flip(path, offset):
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0xFF
    path.write_bytes(bytes(blob))


def _as_version_1(path):
    """What a checkpoint written before checksums existed looks like."""
    (path / "checksums.json").unlink()
    trainer = json.loads((path / "trainer.json").read_text())
    trainer["version"] = 1
    (path / "trainer.json").write_text(json.dumps(trainer))


@pytest.mark.parametrize("name", FILES)
def test_a_flipped_byte_in_any_file_is_refused_naming_it(saved, tmp_path, name):
    path = _copy(saved, tmp_path)
    _flip(path / name, (path / name).stat().st_size // 2)
    with pytest.raises(CheckpointError, match=f"{path / name}: damaged"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=name):
        load_policy(path)  # what the policy node calls: nothing damaged is deployed


def test_200_flipped_weight_bytes_are_refused(saved, tmp_path):
    # The QA case: a few hundred flipped bytes in the weights loaded silently before.
    path = _copy(saved, tmp_path)
    blob = bytearray((path / "model.safetensors").read_bytes())
    header = 8 + int.from_bytes(blob[:8], "little")
    for offset in np.random.default_rng(0).choice(
        np.arange(header, len(blob)), 200, replace=False
    ):
        blob[offset] ^= 0x5A
    (path / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="model.safetensors: damaged or replaced"):
        load_checkpoint(path)


def test_an_extra_or_missing_file_is_refused_naming_it(saved, tmp_path):
    path = _copy(saved, tmp_path)
    (path / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="notes.txt: not listed in checksums.json"):
        load_checkpoint(path)
    (path / "notes.txt").unlink()
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest.json: missing"):
        load_checkpoint(path)


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("content", ["pickle", "truncated", "empty"])
def test_a_pickle_or_truncated_file_named_model_safetensors_is_refused(
    saved, tmp_path, version, content
):
    path = _copy(saved, tmp_path)
    if version == 1:
        _as_version_1(path)
    model = path / "model.safetensors"
    model.write_bytes(
        {"pickle": PICKLE, "truncated": model.read_bytes()[:-100], "empty": b""}[content]
    )
    # Version 2: the checksum refuses it; version 1: safetensors' parser does.
    reason = "damaged or replaced" if version == 2 else "not a safetensors file"
    with warnings.catch_warnings(), pytest.raises(CheckpointError, match=f"{model}: {reason}"):
        warnings.simplefilter("ignore", CheckpointWarning)
        load_checkpoint(path)


def test_a_version_1_checkpoint_loads_unverified_with_one_warning(saved, tmp_path):
    path = _copy(saved, tmp_path)
    _as_version_1(path)
    with pytest.warns(
        CheckpointWarning, match="version-1 checkpoint without checksums.json"
    ) as caught:
        ckpt = load_checkpoint(path)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert not ckpt.verified and ckpt.model_index == 2
    (path / "trainer.json").write_text(json.dumps({**ckpt.trainer, "version": 2}))
    with pytest.raises(CheckpointError, match="checksums.json: missing"):
        load_checkpoint(path)  # a version-2 checkpoint cannot lose its checksums quietly


# --- permissions ---


def test_checkpoints_are_readable_by_other_users_whatever_the_umask(tmp_path):
    old = os.umask(0o077)  # a private umask must not make the deployed policy unreadable
    try:
        path = _trained(tmp_path / "new" / "root")[3]
    finally:
        os.umask(old)
    for d in (tmp_path / "new", tmp_path / "new" / "root", path):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755, d
    for f in path.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


# --- atomic replacement: a valid copy at every moment ---


def _snapshots_at_crash_points(monkeypatch, root, write):
    """Copies of ``root`` as a kill at each crash point of ``write()`` would leave it."""
    shots = []

    def snapshot(point):
        shots.append((point, shutil.copytree(root, root.parent / f"shot{len(shots)}")))

    monkeypatch.setattr(C, "_crash_point", snapshot)
    write()
    monkeypatch.undo()
    return shots


def test_a_kill_at_any_point_of_a_replace_leaves_a_valid_checkpoint(tmp_path, monkeypatch):
    cfg, _, learner, path = _trained(tmp_path / "root")
    newer = TrainerState(round_index=0, step_in_round=4, model_index=learner.model_index)
    shots = _snapshots_at_crash_points(
        monkeypatch, path.parent, lambda: save_checkpoint(path, learner, cfg, newer)
    )
    points = [p for p, _ in shots]
    assert points[-3:] == ["files_written", "old_moved_aside", "new_in_place"], points
    for point, shot in shots:
        # Before the new copy is complete the old one is the newest valid; after, the new one.
        want = 2 if point.startswith("wrote ") else 4
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CheckpointWarning)
            assert load_checkpoint(shot / "ck").trainer["step_in_round"] == want, point
        recover_checkpoint(shot / "ck")
        assert [p.name for p in shot.iterdir()] == ["ck"], point  # no temp dir left
        assert load_checkpoint(shot / "ck").trainer["step_in_round"] == want, point
    assert [p.name for p in path.parent.iterdir()] == ["ck"]
    assert load_checkpoint(path).trainer["step_in_round"] == 4


def test_an_error_while_replacing_puts_the_old_checkpoint_back(tmp_path, monkeypatch):
    cfg, _, learner, path = _trained(tmp_path / "root")

    def fail(point):
        if point == "old_moved_aside":
            raise OSError("disk full")

    monkeypatch.setattr(C, "_crash_point", fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, learner, cfg, TrainerState(step_in_round=4))
    assert [p.name for p in path.parent.iterdir()] == ["ck"]
    assert load_checkpoint(path).trainer["step_in_round"] == 2


def test_stale_temp_dirs_go_and_discarded_copies_never_come_back(saved, tmp_path):
    path = _copy(saved, tmp_path)
    half = tmp_path / "root" / ".ck.new-abcd1234"  # a write killed half-way
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\0" * 10)
    shutil.copytree(path, tmp_path / "root" / ".ck.del-0011aabb")  # a discard killed
    (tmp_path / "root" / ".ck.a1b2c3d4").mkdir()  # a version-1 writer's temp dir
    assert "removed 3 stale temp dir(s)" in recover_checkpoint(path)
    assert [p.name for p in path.parent.iterdir()] == ["ck"]
    assert load_checkpoint(path).trainer["step_in_round"] == 2
    discard_checkpoint(path)
    assert list(path.parent.iterdir()) == []


def test_a_version_1_writer_killed_between_delete_and_rename_is_recovered(saved, tmp_path):
    # The old swap deleted the previous partial, then renamed the new one: a kill between the
    # two left only its temp dir. Its copy is found and put in place.
    temp = _copy(saved, tmp_path, ".ck.q7x_2k9z")
    _as_version_1(temp)
    path = tmp_path / "root" / "ck"
    with pytest.warns(CheckpointWarning):
        assert load_checkpoint(path).model_index == 2
    assert "recovered" in recover_checkpoint(path)
    assert [p.name for p in path.parent.iterdir()] == ["ck"]
