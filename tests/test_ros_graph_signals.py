"""A teleop node stopped by SIGTERM or Ctrl-C still tells the graph: every arm HOLD."""

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_teleop_publishes_hold_when_signalled(sig):
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from arx_x5_driver.qos import AUTHORITY_QOS
    from habc_interfaces.msg import ControlAuthority

    domain = 100 + (os.getpid() + 11 + int(sig)) % 100
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = Node("listener", context=context)
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(node)
    got = []
    node.create_subscription(ControlAuthority, "/control_authority", got.append, AUTHORITY_QOS)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from habc_control.teleop_node import main; main()",
            "--ros-args",
            "-p",
            "input:=sim_operator",
            "-p",
            "heartbeat_s:=0.2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and len(got) < 2:
            ex.spin_once(timeout_sec=0.05)
        assert len(got) >= 2 and list(got[-1].authority) == [0, 0]
        proc.send_signal(sig)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and list(got[-1].authority) != [2, 2]:
            ex.spin_once(timeout_sec=0.05)
        assert proc.wait(timeout=10) == 0
        assert list(got[-1].authority) == [2, 2]
    finally:
        if proc.poll() is None:
            proc.kill()
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
