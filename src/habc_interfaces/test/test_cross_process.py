"""Every custom message crosses a process boundary over DDS, and both services answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
import rclpy.executors
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from habc_interfaces.msg import ActionChunk, ArmCommand, ControlAuthority, EpisodeEvent
from habc_interfaces.srv import EndEpisode, StartEpisode

PEER = Path(__file__).with_name("interface_peer.py")
TIMEOUT_S = 30.0
TYPES = {
    "/xproc/authority": ControlAuthority,
    "/xproc/command": ArmCommand,
    "/xproc/chunk": ActionChunk,
    "/xproc/event": EpisodeEvent,
}


@pytest.fixture()
def peer_domain():
    # A private DDS domain keeps parallel test runs on one machine from hearing each other.
    domain = str(100 + os.getpid() % 100)
    env = dict(os.environ, ROS_DOMAIN_ID=domain)
    proc = subprocess.Popen([sys.executable, str(PEER)], env=env)
    old = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = domain
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # DDS teardown occasionally stalls after the signal; the peer holds no state.
            proc.kill()
            proc.wait(timeout=10)
        if old is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = old


@pytest.mark.ros
def test_messages_and_services_cross_processes(peer_domain):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("habc_interfaces_listener", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    received: dict[str, object] = {}
    for topic, msg_type in TYPES.items():
        node.create_subscription(
            msg_type, topic, lambda m, t=topic: received.setdefault(t, m), qos
        )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(received) < len(TYPES) and time.monotonic() < deadline:
            assert peer_domain.poll() is None, "peer process died"
            executor.spin_once(timeout_sec=0.1)
        assert set(received) == set(TYPES), f"missing: {set(TYPES) - set(received)}"

        authority = received["/xproc/authority"]
        assert list(authority.arm_names) == ["left", "right"]
        assert list(authority.authority) == [ControlAuthority.HUMAN, ControlAuthority.POLICY]
        assert authority.source == "pedal"
        command = received["/xproc/command"]
        assert command.mode == ArmCommand.MODE_EE and len(command.targets) == 9
        assert command.gripper == pytest.approx(0.044) and command.model_index == 6000
        chunk = received["/xproc/chunk"]
        assert (chunk.horizon, chunk.action_dim, chunk.execute_steps) == (2, 3, 1)
        assert list(chunk.actions) == pytest.approx([0.5, 1.5, 2.5, 3.5, 4.5, 5.5])
        assert list(chunk.dim_names) == ["x", "y", "z"]
        event = received["/xproc/event"]
        assert (event.event, event.outcome, event.round) == (EpisodeEvent.END, "success", 3)

        start_client = node.create_client(StartEpisode, "/xproc/start_episode")
        end_client = node.create_client(EndEpisode, "/xproc/end_episode")
        assert start_client.wait_for_service(timeout_sec=TIMEOUT_S)
        assert end_client.wait_for_service(timeout_sec=TIMEOUT_S)
        start = start_client.call_async(
            StartEpisode.Request(task="open the pouch", source="demo", round=2)
        )
        executor.spin_until_future_complete(start, timeout_sec=TIMEOUT_S)
        assert start.result().accepted and start.result().episode_id == "demo_002"
        assert start.result().message == "open the pouch"
        bad_label = end_client.call_async(EndEpisode.Request(episode_id="x", outcome="maybe"))
        executor.spin_until_future_complete(bad_label, timeout_sec=TIMEOUT_S)
        assert not bad_label.result().accepted
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
