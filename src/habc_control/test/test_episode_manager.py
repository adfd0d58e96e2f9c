import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from habc_control.authority import Authority
from habc_control.episode_manager import EpisodeManager, EpisodeManagerConfig
from habc_control.recorder import EpisodeEventData, EpisodeRecorder, RecorderConfig
from habc_core.contract import (
    EVENT_END,
    EVENT_START,
    read_sidecar,
)
from habc_core.rostypes import make_typestore

T0 = 1_763_770_000_000_000_000


def test_config_validation():
    with pytest.raises(ValueError, match="control_hz"):
        EpisodeManagerConfig(control_hz=0)


def test_start_end_relabel_and_intervened_flag():
    mgr = EpisodeManager(EpisodeManagerConfig(robot="arx_x5_bimanual_sim", control_hz=30.0))
    r = mgr.start("put the marker in the box", "rollout", 2, T0, model_index=100)
    assert r.accepted and r.episode_id.startswith("ep_") and mgr.active
    assert not mgr.start("again", "rollout", 2, T0 + 1).accepted  # one at a time
    mgr.note_authority({"left": Authority.POLICY, "right": Authority.POLICY})
    mgr.note_authority({"left": Authority.HUMAN, "right": Authority.POLICY})
    e = mgr.end("success", T0 + 5_000_000_000)
    assert e.accepted and e.meta.intervened and e.meta.outcome == "success"
    assert e.meta.end_ns - e.meta.start_ns == 5_000_000_000 and e.meta.round == 2
    assert not mgr.active and not mgr.end("success", T0 + 6).accepted
    rl = mgr.end("failure", T0 + 7, episode_id=r.episode_id)  # EndEpisode with an id: relabel
    assert rl.accepted and rl.message == "relabeled" and rl.meta.outcome == "failure"


def test_rejects_bad_requests_with_reasons():
    mgr = EpisodeManager()
    assert "source" in mgr.start("task", "teleop", 0, T0).message
    assert "task" in mgr.start("  ", "rollout", 0, T0).message
    mgr.start("task", "rollout", 0, T0)
    assert "outcome" in mgr.end("great", T0 + 1).message
    assert not mgr.relabel("ep_nope", "success").accepted


def test_unique_ids_for_episodes_started_in_the_same_microsecond():
    mgr = EpisodeManager()
    a = mgr.start("t", "demo", 0, T0).episode_id
    mgr.end("unknown", T0)
    b = mgr.start("t", "demo", 0, T0).episode_id
    assert a != b


def test_recorder_writes_bag_and_sidecar_with_authority(tmp_path):
    ts = make_typestore()
    ca = ts.types["habc_interfaces/msg/ControlAuthority"]
    hdr = ts.types["std_msgs/msg/Header"]
    tm = ts.types["builtin_interfaces/msg/Time"]

    def auth_raw(values):
        msg = ca(
            header=hdr(stamp=tm(sec=0, nanosec=0), frame_id=""),
            arm_names=["left", "right"],
            authority=np.array(values, dtype=np.uint8),
            source="test",
        )
        return bytes(ts.serialize_cdr(msg, msg.__msgtype__))

    rec = EpisodeRecorder(RecorderConfig(data_root=str(tmp_path), robot="arx_x5_bimanual_sim"))
    rec.on_authority({"left": Authority.POLICY}, auth_raw([0, 0]), T0 - 10)  # before START
    assert not rec.on_message("/x", "std_msgs/msg/Header", b"", T0 - 5)
    rec.on_event(EpisodeEventData(EVENT_START, T0, "ep_1", "put it in", "rollout", round=1))
    rec.on_authority(
        {"left": Authority.HUMAN, "right": Authority.POLICY}, auth_raw([1, 0]), T0 + 100
    )
    rec.on_event(EpisodeEventData(EVENT_END, T0 + 200, "ep_1", "", "rollout", outcome="failure"))
    (bag,) = rec.finished
    meta = read_sidecar(bag)
    assert meta.outcome == "failure" and meta.intervened and meta.round == 1
    with Reader(bag) as reader:
        got = [
            (c.topic, t, list(ts.deserialize_cdr(raw, c.msgtype).authority))
            for c, t, raw in reader.messages()
            if c.topic == "/control_authority"
        ]
    assert got == [("/control_authority", T0, [0, 0]), ("/control_authority", T0 + 100, [1, 0])]
    assert rec.relabel("ep_1", "success")
    assert read_sidecar(bag).outcome == "success"
