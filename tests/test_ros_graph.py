"""The rollout graph in-process: one episode with a mid-episode takeover, checked in its bag."""

import os
import time
from collections import Counter

import pytest

pytestmark = pytest.mark.ros

TAKEOVER = (2.0, 3.5)  # left arm under HUMAN authority, seconds after START


def _read_bag(bag_dir):
    from rosbags.rosbag2 import Reader

    from habc_trainer.rostypes import make_typestore

    ts = make_typestore()
    out = {}
    with Reader(bag_dir) as reader:
        for conn, t, raw in reader.messages():
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            out.setdefault(conn.topic, []).append((t, msg))
    return out


def test_takeover_mid_episode_is_labelled_in_the_bag(tmp_path):
    import rclpy
    from rclpy.context import Context

    from habc_control.graph import apply_overrides, load_graph_config
    from habc_control.runner import Graph, call, run_episode
    from habc_interfaces.srv import EndEpisode
    from habc_trainer.contract import read_sidecar

    config = apply_overrides(
        load_graph_config(),
        {
            "backend": "kinematic",
            "data_root": str(tmp_path),
            "teleop.sim_schedule": f"[left:{TAKEOVER[0]}:{TAKEOVER[1]}]",
            "policy.prefetch_steps": "0",
            "teleop.human_source": "measured",
        },
    )
    context = Context()
    # A domain of our own: other test processes on this machine must not cross-talk.
    rclpy.init(context=context, domain_id=100 + os.getpid() % 100)
    graph = Graph(config, context=context)
    try:
        graph.spin_in_background()
        t0 = time.monotonic()
        episode_id = run_episode(graph, "put the marker in the pouch", 5.0, "success")
        time.sleep(0.5)
        # the operator relabels the finished episode: EndEpisode with its id -> RELABEL
        mgr = graph.nodes["episode_manager"]
        relabel = call(
            mgr,
            mgr.create_client(EndEpisode, "/episode/end"),
            EndEpisode.Request(episode_id=episode_id, outcome="failure"),
        )
        assert relabel.accepted, relabel.message
        time.sleep(0.5)
        policy = graph.nodes["policy"]
        fresh = policy.chunker.fresh_chunks_after_takeover
        elapsed = time.monotonic() - t0
    finally:
        graph.stop()
        rclpy.shutdown(context=context)

    (bag,) = [p for p in tmp_path.rglob(episode_id) if p.is_dir()]
    meta = read_sidecar(bag)
    assert (
        meta.outcome == "failure" and meta.intervened
    )  # relabeled after the fact and meta.robot == "arx_x5_bimanual_sim"
    msgs = _read_bag(bag)
    left = [(t, m.authority) for t, m in msgs["/left_arm/command"]]
    right = Counter(m.authority for _, m in msgs["/right_arm/command"])
    labels = Counter(a for _, a in left)
    # 30 Hz for ~5 s; 1.5 s of HUMAN on the left arm only.
    assert 110 <= len(left) <= 160, len(left)
    assert 38 <= labels[1] <= 52, labels
    assert right == Counter({0: len(msgs["/right_arm/command"])})
    # one contiguous HUMAN segment: POLICY ... HUMAN ... POLICY
    runs = [a for i, (_, a) in enumerate(left) if i == 0 or left[i - 1][1] != a]
    assert runs == [0, 1, 0], runs
    # /control_authority in the bag agrees with the command labels
    auth = [(t, list(m.authority)) for t, m in msgs["/control_authority"]]
    assert auth[0][1] == [0, 0] and [1, 0] in [a for _, a in auth]
    switch_back = next(
        t
        for t, a in auth
        if a == [0, 0] and t > auth[0][0] and any(b == [1, 0] for tt, b in auth if tt < t)
    )
    # back to POLICY: a fresh chunk from the current observation, published right after
    assert fresh == 1
    chunk_times = [t for t, _ in msgs["/policy/action_chunk"]]
    assert any(0 <= t - switch_back < 0.2e9 for t in chunk_times)
    assert all(m.execute_steps == 25 and m.horizon == 50 for _, m in msgs["/policy/action_chunk"])
    events = [(m.event, m.outcome) for _, m in msgs["/episode/events"]]
    assert events == [(0, ""), (1, "success")]  # the bag keeps the original END
    assert elapsed < 20
