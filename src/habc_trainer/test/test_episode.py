"""Bag -> validated frames on the control clock; each contract violation is a named error."""

from __future__ import annotations

import numpy as np
import pytest

from habc_core import contract as c
from habc_core import rostypes
from habc_core.bag_writer import EpisodeBagWriter
from habc_core.features import (
    ACTION,
    ENV_STATE,
    HUMAN,
    MODEL_INDEX,
    PROPRIO,
    REQUESTED_ACTION,
    SAFETY,
    image_key,
)
from habc_trainer.episode import EpisodeError, ExtractConfig, extract_episode
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
    from habc_core.bag_reader import open_bag

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


def write_arms(
    bag,
    typestore,
    n=10,
    *,
    hz=10.0,
    right_log_ns=0,
    right_stamp_ns=0,
    skip_right=(),
    safety=None,
    requests=("left", "right"),
    request=None,
):
    """Both arms' commands per tick, the right one logged `right_log_ns` after the left and
    stamped `right_stamp_ns` after it (0: the tick's stamp, as the driver does); `skip_right`
    ticks have no right command; `safety(t, arm)` gives its bits; `requests` arms get a request
    logged 1 ms before their command, `request(t, arm, row)` may change it."""
    period = int(round(1e9 / hz))
    with EpisodeBagWriter(bag, typestore=typestore) as w:
        w.write_event(c.EVENT_START, 0, episode_id="e", task="t", source="rollout")
        for t in range(n):
            now = 1_000_000_000 + t * period
            for a, arm in enumerate(("left", "right")):
                w.write_joint_state(arm, np.append(np.zeros(6), 0.04), now)
                w.write_ee_pose(arm, expected_action(t, a)[:3], [0, 0, 0, 1], now)
            for a, arm in enumerate(("left", "right")):
                if arm == "right" and t in skip_right:
                    continue
                act = expected_action(t, a)
                log = now + (right_log_ns if arm == "right" else 0)
                stamp = now + (right_stamp_ns if arm == "right" else 0)
                if arm in requests:
                    row = act if request is None else request(t, arm, act.copy())
                    msg = w._arm_command(arm, row[:9], row[9], stamp, 0, -1, c.MODE_EE, 0)
                    w.write(c.command_request_topic(arm), msg, log - 1_000_000)
                bits = 0 if safety is None else safety(t, arm)
                msg = w._arm_command(arm, act[:9], act[9], stamp, 0, -1, c.MODE_EE, bits)
                w.write(c.command_topic(arm), msg, log)
    return bag


def right_actions(n, shift=0):
    return np.stack([expected_action(max(t - shift, 0), 1) for t in range(n)])


def test_a_right_arm_logged_30ms_late_keeps_every_frame(tmp_path, typestore):
    # Separate stamps (another recorder): paired by log time, nearest command.
    bag = write_arms(tmp_path / "b", typestore, right_log_ns=30_000_000, right_stamp_ns=30_000_000)
    ep = extract_episode(bag, cfg_no_cams())
    info = ep.info
    assert ep.length == 10 and (info.dropped_leading_frames, info.dropped_trailing_frames) == (
        0,
        0,
    )
    assert info.command_pairing == "log_time"
    assert info.command_skew_median_ms == pytest.approx(30.0)
    assert info.command_skew_max_ms == pytest.approx(30.0)
    np.testing.assert_allclose(ep.arrays[ACTION][:, 10:], right_actions(10), rtol=1e-6)


@pytest.mark.parametrize("skew_ms", [30, 80])
@pytest.mark.parametrize("stamps", ["shared", "own"])
def test_a_skewed_right_arm_at_30hz_keeps_every_frame(tmp_path, typestore, skew_ms, stamps):
    # 30 Hz: both skews are more than half a period (what failed before: tick 0 had no right
    # command within 16.7 ms and the whole episode was skipped).
    skew = skew_ms * 1_000_000
    bag = write_arms(
        tmp_path / "b",
        typestore,
        hz=30.0,
        right_log_ns=skew,
        right_stamp_ns=0 if stamps == "shared" else skew,
    )
    ep = extract_episode(bag, cfg_no_cams())
    info = ep.info
    assert ep.length == 10 and (info.dropped_leading_frames, info.dropped_trailing_frames) == (
        0,
        0,
    )
    assert info.command_skew_max_ms == pytest.approx(skew_ms, abs=1e-3)
    if stamps == "shared":
        assert info.command_pairing == "stamp"
        assert info.command_skew_median_ms == pytest.approx(skew_ms, abs=1e-3)
        np.testing.assert_allclose(ep.arrays[ACTION][:, 10:], right_actions(10), rtol=1e-6)
    else:
        # The nearest command in log time: a neighbouring tick's, |skew - k * period| away.
        period_ms = 1e3 / 30
        nearest = min(abs(skew_ms - k * period_ms) for k in range(4))
        assert info.command_pairing == "log_time"
        assert info.command_skew_median_ms == pytest.approx(nearest, abs=1e-3)


def test_a_right_arm_logged_80ms_late_at_10hz_pairs_the_nearest_command(tmp_path, typestore):
    # 80 ms is more than half a period: without shared stamps the nearest right command of
    # tick t is the one of tick t - 1 (20 ms before). Nothing is dropped; the skew says so.
    bag = write_arms(tmp_path / "b", typestore, right_log_ns=80_000_000, right_stamp_ns=1)
    ep = extract_episode(bag, cfg_no_cams())
    info = ep.info
    assert ep.length == 10 and info.command_pairing == "log_time"
    assert info.command_skew_median_ms == pytest.approx(20.0)
    assert info.command_skew_max_ms == pytest.approx(80.0)  # tick 0: right's first command
    np.testing.assert_allclose(ep.arrays[ACTION][:, 10:], right_actions(10, shift=1), rtol=1e-6)


def test_shared_stamps_pair_exactly_however_far_apart_the_log_times(tmp_path, typestore):
    # 20 Hz: 40 ms is most of a period, log-time pairing would take the previous tick.
    bag = write_arms(tmp_path / "b", typestore, hz=20.0, right_log_ns=40_000_000)
    ep = extract_episode(bag, cfg_no_cams())
    assert ep.length == 10 and ep.info.command_pairing == "stamp"
    assert ep.info.command_skew_median_ms == pytest.approx(40.0)
    assert ep.info.command_skew_p95_ms == pytest.approx(40.0)
    np.testing.assert_allclose(ep.arrays[ACTION][:, 10:], right_actions(10), rtol=1e-6)


@pytest.mark.parametrize("stamps", ["shared", "own"])
def test_a_half_second_hole_in_the_right_arm_is_an_error(tmp_path, typestore, stamps):
    bag = write_arms(
        tmp_path / stamps,
        typestore,
        n=12,
        right_stamp_ns=0 if stamps == "shared" else 1,
        skip_right=range(4, 9),
    )
    # Tick 4 is one period from tick 3's command (within 0.1 s); tick 5 is the first too far.
    with pytest.raises(
        EpisodeError, match=r"/right_arm/command @ t=1\.500s .*no right command within 0\.1s"
    ) as err:
        extract_episode(bag, cfg_no_cams())
    assert str(bag) in str(err.value)
    # A longer bound turns the same hole into frames paired with the held command.
    ep = extract_episode(bag, cfg_no_cams(max_command_gap_s=0.6))
    assert ep.length == 12


def test_ticks_before_and_after_the_right_arms_commands_are_dropped(tmp_path, typestore):
    skip = (0, 1, 9, 10, 11)
    bag = write_arms(tmp_path / "shared", typestore, n=12, skip_right=skip)
    ep = extract_episode(bag, cfg_no_cams())
    info = ep.info
    assert (info.dropped_leading_frames, info.dropped_trailing_frames, ep.length) == (2, 3, 7)
    np.testing.assert_allclose(ep.arrays[ACTION][:, 10:], right_actions(9)[2:], rtol=1e-6)
    assert ep.arrays["timestamp_ns"][0] == 1_200_000_000
    # Own stamps: an edge tick whose nearest right command is within the gap bound is kept.
    bag = write_arms(tmp_path / "own", typestore, n=12, right_stamp_ns=1, skip_right=skip)
    info = extract_episode(bag, cfg_no_cams()).info
    assert (info.dropped_leading_frames, info.dropped_trailing_frames) == (1, 2)


def test_safety_bits_and_requests_land_per_frame(tmp_path, typestore):
    def safety(t, arm):
        if arm == "right" and t in (3, 4):
            return c.SAFETY_GRIPPER | c.SAFETY_STEP
        return c.SAFETY_WORKSPACE if arm == "left" and t == 7 else 0

    def request(t, arm, row):
        if arm == "right" and t in (3, 4):
            row[9] = 0.2  # asked for more than the gripper's stroke: executed clipped
        return row

    # The right arm is logged 80 ms late: its request belongs to its own command, not the tick.
    bag = write_arms(
        tmp_path / "b", typestore, right_log_ns=80_000_000, safety=safety, request=request
    )
    ep = extract_episode(bag, cfg_no_cams())
    bits = ep.arrays[SAFETY]
    assert bits.dtype == np.uint8 and bits.shape == (10, 2)
    assert bits[:, 1].tolist() == [0, 0, 0, 20, 20, 0, 0, 0, 0, 0]
    assert bits[:, 0].tolist() == [0] * 7 + [2, 0, 0]
    req = ep.arrays[REQUESTED_ACTION]
    assert req.shape == ep.arrays[ACTION].shape and req.dtype == np.float32
    differs = np.abs(req - ep.arrays[ACTION]).max(axis=1) > 1e-6
    assert np.flatnonzero(differs).tolist() == [3, 4]
    assert req[3, 19] == pytest.approx(0.2)


def test_refused_requests_are_kept_as_nan_and_requests_need_both_arms(tmp_path, typestore):
    def nan_row(t, arm, row):
        if arm == "left" and t == 6:
            row[2] = np.nan
        return row

    # A NaN request is one the driver refused (it held the arm): the episode still converts,
    # the executed action is intact, and the request row says what was asked (nothing usable).
    bag = write_arms(tmp_path / "nan", typestore, request=nan_row)
    ep = extract_episode(bag, cfg_no_cams())
    req = ep.arrays[REQUESTED_ACTION]
    assert np.isnan(req[6, :10]).all() and np.isfinite(req[6, 10:]).all()
    assert np.isfinite(np.delete(req, 6, axis=0)).all()
    assert np.isfinite(ep.arrays[ACTION]).all()

    def huge_row(t, arm, row):
        if arm == "left" and t == 6:
            row[2] = 1e6
        return row

    bag = write_arms(tmp_path / "huge", typestore, request=huge_row)
    with pytest.raises(
        EpisodeError, match=r"/left_arm/command_request @ t=1\.599s .*out-of-range"
    ):
        extract_episode(bag, cfg_no_cams())
    bag = write_arms(tmp_path / "left_only", typestore, requests=("left",))
    ep = extract_episode(bag, cfg_no_cams())
    assert REQUESTED_ACTION not in ep.arrays and ep.arrays[SAFETY].shape == (10, 2)


def old_arm_command_typestore():
    """Standard types + our .msg files, ArmCommand as it was before the `safety` field."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    msg_dir = rostypes.find_msg_dir()
    defs = []
    for msgtype in c.CUSTOM_TYPES:
        text = (msg_dir / (msgtype.rsplit("/", 1)[1] + ".msg")).read_text(encoding="utf-8")
        if msgtype == c.ARM_COMMAND_TYPE:
            text = "\n".join(
                line for line in text.splitlines() if "SAFETY" not in line and "safety" not in line
            )
        defs.append((msgtype, text))
    rostypes.register_msg_texts(store, defs)
    return store


def test_a_bag_without_the_safety_field_reads_zero_bits(tmp_path):
    from rosbags.rosbag2 import Reader

    bag = write_arms(tmp_path / "old", old_arm_command_typestore(), requests=())
    with Reader(bag) as r:
        (conn,) = [x for x in r.connections if x.topic == c.command_topic("left")]
        assert "safety" not in conn.msgdef.data and "model_index" in conn.msgdef.data
    ep = extract_episode(bag, cfg_no_cams())
    assert ep.length == 10 and not ep.arrays[SAFETY].any()
    assert REQUESTED_ACTION not in ep.arrays


def test_the_gap_bound_is_validated_and_the_old_key_is_refused():
    with pytest.raises(ValueError, match=r"max_command_gap_s: must be > 0, got 0"):
        ExtractConfig(max_command_gap_s=0)
    with pytest.raises(
        ValueError, match=r"command_sync_tolerance_s: removed; use max_command_gap_s"
    ):
        ExtractConfig(command_sync_tolerance_s=0.02)


def test_a_bag_defining_every_type_it_uses_needs_no_standard_types():
    """Complete definitions (what ros2 bag and our recorder write) get a store of their own
    types only (Jazzy's costs 90 ms a process); one that leaves a type out gets Jazzy's under."""
    from habc_core.bag_reader import _Typestores

    stores = _Typestores()
    own = stores.get((("demo_msgs/msg/Tick", "ros2msg", TICK, ""),))
    assert "demo_msgs/msg/Tick" in own.fielddefs
    assert "sensor_msgs/msg/Imu" not in own.fielddefs
    partial = "std_msgs/Header header\nfloat64 x\n"  # Header's definition left out
    under = stores.get((("demo_msgs/msg/Partial", "ros2msg", partial, ""),))
    assert {"demo_msgs/msg/Partial", "std_msgs/msg/Header"} <= set(under.fielddefs)
    assert under is not own


TIME = "=" * 80 + "\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
TICK = "builtin_interfaces/Time stamp\nfloat64 x\n" + TIME


def test_bags_whose_types_agree_share_one_typestore_and_a_contradiction_gets_its_own():
    """rosbags generates a type's decoders once per store: bags holding different topics of one
    rig share theirs; a bag defining a type differently never reads through the others' store."""
    from habc_core.bag_reader import _Typestores

    stores = _Typestores()
    tick = ("demo_msgs/msg/Tick", "ros2msg", TICK, "")
    tock = ("demo_msgs/msg/Tock", "ros2msg", "builtin_interfaces/Time at\nint8 n\n" + TIME, "")
    first = stores.get((tick,))
    both = stores.get((tick, tock))
    assert both is first and "demo_msgs/msg/Tock" in first.fielddefs
    other_tick = (
        "demo_msgs/msg/Tick",
        "ros2msg",
        "builtin_interfaces/Time stamp\nint64 x\n" + TIME,
        "",
    )
    other = stores.get((other_tick,))
    assert other is not first
    assert other.fielddefs["demo_msgs/msg/Tick"] != first.fielddefs["demo_msgs/msg/Tick"]
