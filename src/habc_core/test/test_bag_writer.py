"""The episode bag writer: typed + raw writes, self-describing bags, sidecar last, crash safety."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from mcap.exceptions import EndOfFile
from mcap.stream_reader import StreamReader
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader

from habc_core import contract as c
from habc_core.bag_writer import BagWriteError, EpisodeBagWriter
from habc_core.rostypes import make_typestore


@pytest.fixture(scope="module")
def typestore():
    return make_typestore()


def meta_for(episode_id: str) -> c.EpisodeMeta:
    return c.EpisodeMeta(
        episode_id=episode_id,
        task="fold",
        source="rollout",
        outcome="failure",
        round=1,
        model_index=7,
        robot="arx_x5_bimanual_sim",
        control_hz=10.0,
        t_max_steps=50,
        start_ns=0,
        end_ns=900_000_000,
        intervened=True,
    )


def test_typed_messages_round_trip_through_any_reader(tmp_path: Path, typestore):
    bag = tmp_path / "ep_a"
    rgb = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    with EpisodeBagWriter(bag, typestore=typestore) as w:
        w.write_event(c.EVENT_START, 0, episode_id="ep_a", task="fold", source="rollout")
        w.write_image("top", rgb, 1)
        w.write_image("left_wrist", rgb, 1, compressed=True)
        w.write_joint_state("left", np.arange(7.0), 2)
        w.write_ee_pose("right", [1, 2, 3], [0, 0, 0, 1], 3)
        w.write_arm_command("left", np.arange(9.0), 0.04, 4, authority=c.AUTHORITY_HUMAN)
        w.write_authority({"left": c.AUTHORITY_HUMAN, "right": c.AUTHORITY_POLICY}, 5)
        w.write_action_chunk(np.ones((4, 3)), 6, chunk_id=1, model_index=7, execute_steps=2)
        w.finish(meta_for("ep_a"), 900_000_000)
    assert c.read_sidecar(bag) == meta_for("ep_a")
    got = {}
    # No typestore given: the custom types come from the definitions stored in the bag.
    with AnyReader([bag]) as r:
        for conn, _t, raw in r.messages():
            got.setdefault(conn.topic, []).append(r.deserialize(raw, conn.msgtype))
    img = got[c.image_topic("top")][0]
    assert np.array_equal(np.asarray(img.data).reshape(24, 32, 3), rgb)
    assert got[c.compressed_image_topic("left_wrist")][0].format.endswith("jpeg compressed bgr8")
    assert list(got[c.joint_states_topic("left")][0].position) == list(np.arange(7.0))
    assert got[c.command_topic("left")][0].authority == c.AUTHORITY_HUMAN
    assert list(got[c.AUTHORITY_TOPIC][0].authority) == [1, 0]
    chunk = got[c.ACTION_CHUNK_TOPIC][0]
    assert (chunk.horizon, chunk.action_dim) == (4, 3)
    events = got[c.EPISODE_EVENTS_TOPIC]
    assert [e.event for e in events] == [c.EVENT_START, c.EVENT_END]
    assert events[-1].outcome == "failure"


def test_names_frames_safety_and_requests_follow_the_contract(tmp_path: Path, typestore):
    bag = tmp_path / "ep_names"
    with EpisodeBagWriter(bag, typestore=typestore) as w:
        for arm in ("left", "right"):
            w.write_joint_state(arm, np.arange(7.0), 1)
            w.write_ee_pose(arm, [0, 0, 0], [0, 0, 0, 1], 1)
            w.write_command_request(arm, np.zeros(9), 0.2, 2, authority=c.AUTHORITY_POLICY)
            w.write_arm_command(
                arm,
                np.zeros(9),
                0.088,
                2,
                authority=c.AUTHORITY_POLICY,
                safety=c.SAFETY_GRIPPER | c.SAFETY_STEP,
            )
        w.write_image("top", np.zeros((4, 4, 3), np.uint8), 1)
        with pytest.raises(ValueError, match=r"safety: 128 is not a combination"):
            w.write_arm_command("left", np.zeros(9), 0.0, 3, authority=0, safety=128)
    got = {}
    with AnyReader([bag]) as r:
        for conn, _t, raw in r.messages():
            got[conn.topic] = r.deserialize(raw, conn.msgtype)
    for arm in ("left", "right"):
        js = got[c.joint_states_topic(arm)]
        assert list(js.name) == c.joint_names(arm)
        assert js.header.frame_id == c.base_frame(arm) == f"{arm}_base_link"
        assert got[c.ee_pose_topic(arm)].header.frame_id == c.base_frame(arm)
        executed, request = got[c.command_topic(arm)], got[c.command_request_topic(arm)]
        assert executed.header.frame_id == request.header.frame_id == c.base_frame(arm)
        assert executed.safety == c.SAFETY_GRIPPER | c.SAFETY_STEP and request.safety == 0
        assert (executed.gripper, request.gripper) == (0.088, 0.2)
        assert executed.header.stamp == request.header.stamp
    assert got[c.image_topic("top")].header.frame_id == c.camera_frame("top")
    assert set(got) <= set(c.recorded_topics())


def test_raw_cdr_bytes_and_sqlite3(tmp_path: Path, typestore):
    msg = typestore.types[c.CONTROL_AUTHORITY_TYPE](
        header=typestore.types["std_msgs/msg/Header"](
            stamp=typestore.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id=""
        ),
        arm_names=["left", "right"],
        authority=np.array([0, 2], dtype=np.uint8),
        source="pedal",
    )
    raw = bytes(typestore.serialize_cdr(msg, c.CONTROL_AUTHORITY_TYPE))
    bag = tmp_path / "ep_sql"
    with EpisodeBagWriter(bag, storage="sqlite3", typestore=typestore) as w:
        w.write_raw(c.AUTHORITY_TOPIC, c.CONTROL_AUTHORITY_TYPE, raw, 1_000_000_000)
    assert c.storage_files(bag)[0].suffix == ".db3"
    with AnyReader([bag]) as r:
        ((conn, t, data),) = list(r.messages())
        assert t == 1_000_000_000
        assert r.deserialize(data, conn.msgtype).source == "pedal"


def test_contract_violations_are_refused(tmp_path: Path, typestore):
    with EpisodeBagWriter(tmp_path / "ep_b", typestore=typestore) as w:
        w.write_authority([0, 0], 1)
        with pytest.raises(BagWriteError, match="already has type"):
            w.write_raw(c.AUTHORITY_TOPIC, c.EPISODE_EVENT_TYPE, b"", 2)
        with pytest.raises(BagWriteError, match="unknown to the typestore"):
            w.write_raw("/x", "my_pkg/msg/Nope", b"", 2)
        with pytest.raises(ValueError, match="rgb"):
            w.write_image("top", np.zeros((4, 4), np.uint8), 3)
    with pytest.raises(BagWriteError, match="exists already"):
        EpisodeBagWriter(tmp_path / "ep_b", typestore=typestore).open()


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from habc_core.bag_writer import EpisodeBagWriter
    from habc_core.contract import EVENT_START
    w = EpisodeBagWriter(sys.argv[1], flush_interval_ns=100_000_000).open()
    w.write_event(EVENT_START, 0, episode_id="ep_k", task="fold", source="rollout")
    for i in range(30):
        w.write_joint_state("left", np.full(7, float(i)), i * 50_000_000)
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_sigkilled_writer_leaves_recoverable_chunks(tmp_path: Path, kill_when_ready):
    bag = tmp_path / "ep_k"
    kill_when_ready(_KILLED_WRITER, str(bag))
    assert not (bag / c.BAG_METADATA_NAME).exists()
    assert not (bag / c.SIDECAR_NAME).exists()
    with pytest.raises(Exception):  # noqa: B017 - rosbags refuses the unfinished bag
        Reader(bag).open()
    messages = 0
    with open(c.storage_files(bag)[0], "rb") as fh:
        with pytest.raises(EndOfFile):
            for record in StreamReader(fh, skip_magic=False).records:
                messages += type(record).__name__ == "Message"
    # Flushed every 100 ms of bag time: all but the last partial chunk survive.
    assert messages >= 25
