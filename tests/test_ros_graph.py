"""The rollout graph in-process: one episode with a mid-episode takeover, checked in its bag."""

import os
import time
from collections import Counter

import pytest

pytestmark = pytest.mark.ros

TAKEOVER = (2.0, 3.5)  # left arm under HUMAN authority, seconds after START


def _read_bag(bag_dir):
    from rosbags.rosbag2 import Reader

    from habc_core.rostypes import make_typestore

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
    from habc_core.contract import read_sidecar
    from habc_interfaces.srv import EndEpisode

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
        episode_id, _ = run_episode(graph, "put the marker in the pouch", 5.0, "success")
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
    finally:
        graph.stop()
        rclpy.shutdown(context=context)

    (bag,) = [p for p in tmp_path.rglob(episode_id) if p.is_dir()]
    meta = read_sidecar(bag)
    assert (
        meta.outcome == "failure" and meta.intervened
    )  # relabeled after the fact and meta.robot == "arx_x5_bimanual_sim"
    msgs = _read_bag(bag)
    # The executed commands: the driver's safety core may hold a tick under load (its watchdog,
    # a request later than watchdog_s): such a tick is HOLD with a safety bit, never HUMAN, and
    # rare. The authority pattern is read on the other ticks.
    from habc_core.contract import SAFETY_HOLD, SAFETY_WATCHDOG

    held = [
        m for _, m in msgs["/left_arm/command"] + msgs["/right_arm/command"] if m.authority == 2
    ]
    assert all(m.safety & (SAFETY_WATCHDOG | SAFETY_HOLD) for m in held)
    assert len(held) <= 0.05 * len(msgs["/left_arm/command"]), len(held)
    left = [(t, m.authority) for t, m in msgs["/left_arm/command"] if m.authority != 2]
    right = Counter(m.authority for _, m in msgs["/right_arm/command"] if m.authority != 2)
    labels = Counter(a for _, a in left)
    assert set(right) == {0}
    # one contiguous HUMAN segment on the left arm: POLICY ... HUMAN ... POLICY
    runs = [a for i, (_, a) in enumerate(left) if i == 0 or left[i - 1][1] != a]
    assert runs == [0, 1, 0], runs
    # Times below are the bag's own (receive) stamps [ns] and tick counts, never this machine's
    # speed: a slow machine runs fewer ticks, but the same schedule.
    (start_t,) = [t for t, m in msgs["/episode/events"] if m.event == 0]
    (end_t,) = [t for t, m in msgs["/episode/events"] if m.event == 1]
    human = [i for i, (_, a) in enumerate(left) if a == 1]
    human_on, human_off = left[human[0]][0], left[human[-1] + 1][0]
    # /control_authority in the bag agrees with the command labels
    auth = [(t, list(m.authority)) for t, m in msgs["/control_authority"]]
    assert auth[0][1] == [0, 0] and [1, 0] in [a for _, a in auth]
    assert all(a in ([0, 0], [1, 0]) for _, a in auth), auth  # never the right arm
    take = next(t for t, a in auth if a == [1, 0])
    switch_back = next(t for t, a in auth if a == [0, 0] and t > take)
    # the takeover starts no earlier than scheduled and lasts as scheduled (1.5 s), generously
    assert human_on - start_t >= (TAKEOVER[0] - 0.3) * 1e9
    assert human_off < end_t
    planned = TAKEOVER[1] - TAKEOVER[0]
    assert 0.5 * planned <= (switch_back - take) / 1e9 <= 2.0 * planned
    # the labels follow /control_authority within a few ticks' latency
    assert abs((human_off - human_on) - (switch_back - take)) < 0.5e9
    # HUMAN ticks match the takeover's share of the ticks actually executed (at any tick rate)
    rate = (len(left) - 1) / ((left[-1][0] - left[0][0]) / 1e9)  # left commands per second
    assert rate <= 30 * 1.2  # never faster than control_hz
    expected = rate * (human_off - human_on) / 1e9
    assert abs(labels[1] - expected) <= 0.25 * expected + 3, (labels, expected)
    # back to POLICY: the old chunk is dropped and a fresh one is inferred from the current
    # observation at once, not when the old one's 25 executed steps would have run out
    assert fresh == 1
    chunk_times = [t for t, _ in msgs["/policy/action_chunk"]]
    first_after = min(t for t in chunk_times if t >= switch_back)
    ticks_before_chunk = sum(1 for t, _ in left if switch_back <= t < first_after)
    assert ticks_before_chunk < 25, ticks_before_chunk
    assert all(m.execute_steps == 25 and m.horizon == 50 for _, m in msgs["/policy/action_chunk"])
    events = [(m.event, m.outcome) for _, m in msgs["/episode/events"]]
    assert events == [(0, ""), (1, "success")]  # the bag keeps the original END


def test_the_arm_driver_in_a_process_of_its_own_drives_a_seeded_episode(tmp_path):
    """habc-rollout's default: the driver as launch runs it (own process, its params file);
    a seeded sim reset and an episode across the processes, the driver's safe stop on stop()."""
    import rclpy
    from rclpy.context import Context

    from habc_control.graph import apply_overrides, load_graph_config
    from habc_control.runner import Graph, run_episode
    from habc_core.contract import command_topic

    config = apply_overrides(
        load_graph_config(),
        {"backend": "sim", "data_root": str(tmp_path), "arm_driver.camera_every": "0"},
    )
    context = Context()
    rclpy.init(context=context, domain_id=100 + (os.getpid() + 11) % 100)
    graph = Graph(config, context=context, own_process=("arm_driver",))
    try:
        assert (
            "arm_driver" not in graph.nodes and graph.processes["arm_driver"].proc.poll() is None
        )
        graph.spin_in_background()
        episode_id, _ = run_episode(graph, "put the marker in the pouch", 2.0, "unknown", seed=3)
        time.sleep(0.5)
        proc = graph.processes["arm_driver"].proc
    finally:
        graph.stop()
        rclpy.shutdown(context=context)
    assert proc.returncode == 0  # its own fail-safe shutdown (SIGINT), not a kill
    (bag,) = [p for p in tmp_path.rglob(episode_id) if p.is_dir()]
    msgs = _read_bag(bag)
    assert len(msgs[command_topic("left")]) > 20  # the other process's executed commands
