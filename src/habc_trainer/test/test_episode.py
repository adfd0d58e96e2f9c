"""Bag -> validated frames on the control clock; each contract violation is a named error."""

from __future__ import annotations

import numpy as np
import pytest

from habc_trainer import contract as c
from habc_trainer import rostypes
from habc_trainer.bag_writer import EpisodeBagWriter
from habc_trainer.episode import EpisodeError, ExtractConfig, extract_episode
from habc_trainer.features import ACTION, ENV_STATE, HUMAN, MODEL_INDEX, PROPRIO, image_key
from habc_trainer.synthetic import SyntheticSpec, expected_action, write_synthetic_episode

CFG = ExtractConfig(image_size=16)


@pytest.fixture(scope="module")
def typestore():
    return rostypes.make_typestore()


def synth(tmp_path, typestore, name="ep", pattern="PPPPHHHHPP", **kw):
    spec = SyntheticSpec(name, pattern, image_hw=(12, 16), **kw)
    write_synthetic_episode(tmp_path / name, spec, typestore=typestore)
    return tmp_path / name


def test_frames_hold_the_executed_commands_authority_and_observations(tmp_path, typestore):
    ep = extract_episode(synth(tmp_path, typestore, with_env_state=True), CFG)
    a = ep.arrays
    assert ep.length == 10 and ep.info.outcome == "success" and ep.info.outcome_from == "sidecar"
    np.testing.assert_allclose(a[ACTION][3, :10], expected_action(3, 0), rtol=1e-6)
    np.testing.assert_allclose(a[ACTION][3, 10:], expected_action(3, 1), rtol=1e-6)
    assert a[HUMAN][:, 0].tolist() == [c == "H" for c in "PPPPHHHHPP"]
    assert not a[HUMAN][:, 1].any()
    assert a[MODEL_INDEX].tolist() == [500] * 10  # the right arm stayed under the policy
    # EE proprio: xyz + rot6d of the identity quaternion + gripper per arm.
    np.testing.assert_allclose(a[PROPRIO][3, 3:9], [1, 0, 0, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(a[PROPRIO][3, 9], expected_action(3, 0)[9], rtol=1e-6)
    assert a[image_key("top")].shape == (10, 16, 16, 3) and a[image_key("top")].dtype == np.uint8
    assert a[ENV_STATE].shape == (10, 3)
    assert ep.info.intervened


def test_compressed_images_sqlite_and_joint_proprio(tmp_path, typestore):
    bag = synth(tmp_path, typestore, compressed=True, storage="sqlite3")
    ep = extract_episode(bag, ExtractConfig(image_size=16, proprio="joint"))
    assert ep.arrays[PROPRIO].shape == (10, 14)
    assert ep.arrays[image_key("left_wrist")].shape == (10, 16, 16, 3)


def test_without_sidecar_the_end_event_gives_the_outcome(tmp_path, typestore):
    bag = synth(tmp_path, typestore, outcome="failure")
    (bag / c.SIDECAR_NAME).unlink()
    ep = extract_episode(bag, CFG)
    assert (ep.info.outcome, ep.info.outcome_from) == ("failure", "event")
    assert ep.info.control_hz == pytest.approx(10.0)


def test_sidecar_relabel_wins_over_the_end_event(tmp_path, typestore):
    bag = synth(tmp_path, typestore, outcome="failure")
    c.write_sidecar(bag, c.read_sidecar(bag).replace(outcome="success"))
    assert extract_episode(bag, CFG).info.outcome == "success"


def test_custom_types_are_read_from_the_bag_not_the_install(tmp_path, typestore, monkeypatch):
    bag = tmp_path / "foreign"
    gadget = "uint8 level\nstring note\n"
    with EpisodeBagWriter(bag, typestore=typestore) as w:
        w.write_raw(
            "/gadget",
            "other_pkg/msg/Gadget",
            b"\x00\x01\x00\x00" + b"\x01" + b"\x00" * 3 + b"\x01\x00\x00\x00\x00",
            5,
            msgdef=gadget,
        )
    spec = SyntheticSpec("inner", "PPPP", image_hw=(12, 16))
    write_synthetic_episode(tmp_path / "inner", spec, typestore=typestore)

    def refuse(*_a, **_k):
        raise AssertionError("the reader must not need installed .msg files")

    monkeypatch.setattr(rostypes, "find_msg_dir", refuse)
    monkeypatch.setattr(rostypes, "make_typestore", refuse)
    assert extract_episode(tmp_path / "inner", CFG).length == 4
    from habc_trainer.bag_reader import open_bag

    contents = open_bag(bag)
    assert contents.topics == {"/gadget": "other_pkg/msg/Gadget"}
    ((topic, _t, _ns, msg),) = list(contents.messages())
    assert topic == "/gadget" and msg.level == 1


def write_ticks(bag, typestore, n=8, *, skip=(), bad=None, stamp_jump_at=None):
    """A minimal hand-written episode; `skip` drops (topic, t) pairs, `bad(t)` mutates."""
    with EpisodeBagWriter(bag, typestore=typestore) as w:
        w.write_event(c.EVENT_START, 0, episode_id="e", task="t", source="rollout")
        for t in range(n):
            now = 1_000_000_000 + t * 100_000_000
            for a, arm in enumerate(("left", "right")):
                act = expected_action(t, a)
                targets = act[:9] if bad is None else bad(t, arm, act[:9])
                if (c.joint_states_topic(arm), t) not in skip:
                    if t == stamp_jump_at and arm == "left":
                        # A source clock that jumps back 0.5 s (the log time is still fine).
                        real = w._header

                        def jumped(stamp, frame="", real=real):
                            return real(stamp - 500_000_000, frame)

                        w._header = jumped
                        w.write_joint_state(arm, np.append(np.zeros(6), 0.04), now)
                        w._header = real
                    else:
                        w.write_joint_state(arm, np.append(np.zeros(6), 0.04), now)
                w.write_ee_pose(arm, act[:3], [0, 0, 0, 1], now)
                if (c.command_topic(arm), t) not in skip:
                    w.write_arm_command(arm, targets, act[9], now, authority=0)


def cfg_no_cams(**kw):
    return ExtractConfig(cameras=(), **kw)


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("missing", r"/right_arm/command: missing topic"),
        ("stale", r"/left_arm/joint_states @ t=1\.400s .*stale observation: newest is 0\.300s"),
        ("nan", r"/left_arm/command @ t=1\.300s .*NaN"),
        ("range", r"/right_arm/command @ t=1\.200s .*out-of-range"),
        ("dims", r"/left_arm/command @ t=1\.400s .*dimension mismatch"),
        ("gap", r"/right_arm/command @ t=1\.500s .*no right command"),
    ],
)
def test_contract_violations_name_file_topic_and_time(tmp_path, typestore, case, match):
    bag = tmp_path / case

    def bad(t, arm, targets):
        targets = targets.copy()
        if case == "nan" and arm == "left" and t == 3:
            targets[0] = np.nan
        if case == "range" and arm == "right" and t == 2:
            targets[1] = 1e6
        if case == "dims" and arm == "left" and t == 4:
            targets = targets[:7]
        return targets

    skip = set()
    if case == "missing":
        skip = {(c.command_topic("right"), t) for t in range(8)}
    if case == "stale":
        skip = {(c.joint_states_topic("left"), t) for t in range(2, 8)}
    if case == "gap":
        skip = {(c.command_topic("right"), 5)}
    write_ticks(bag, typestore, skip=skip, bad=bad)
    with pytest.raises(EpisodeError, match=match) as err:
        extract_episode(bag, cfg_no_cams())
    assert str(bag) in str(err.value)


def test_non_monotonic_header_stamps_are_an_error(tmp_path, typestore):
    bag = tmp_path / "mono"
    write_ticks(bag, typestore, stamp_jump_at=3)
    with pytest.raises(EpisodeError, match=r"/left_arm/joint_states @ t=1\.300s .*non-monotonic"):
        extract_episode(bag, cfg_no_cams())


def test_corrupt_file_and_missing_camera(tmp_path, typestore):
    bad = tmp_path / "junk"
    bad.mkdir()
    (bad / "junk.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\x07" * 40)
    with pytest.raises(EpisodeError, match="junk.mcap"):
        extract_episode(bad, CFG)
    bag = synth(tmp_path, typestore, cameras=("top",))
    with pytest.raises(EpisodeError, match=r"/camera/left_wrist/color/image_raw: missing topic"):
        extract_episode(bag, CFG)


def test_jpeg_images_match_raw_images_at_training_resolution(tmp_path, typestore):
    frames = {}
    for compressed in (False, True):
        spec = SyntheticSpec(
            "same", "PPP", image_hw=(240, 320), cameras=("top",), compressed=compressed
        )
        write_synthetic_episode(tmp_path / str(compressed), spec, typestore=typestore)
        ep = extract_episode(
            tmp_path / str(compressed), ExtractConfig(cameras=("top",), image_size=32)
        )
        frames[compressed] = ep.arrays[image_key("top")].astype(np.float32)
    # Reduced-scale JPEG decoding + area resize stays within JPEG noise of the raw path.
    assert frames[True].shape == frames[False].shape == (3, 32, 32, 3)
    assert np.abs(frames[True] - frames[False]).mean() < 4.0
