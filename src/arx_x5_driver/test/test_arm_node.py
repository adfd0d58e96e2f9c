"""The arm driver node in-process (kinematic backend): state out, safety-checked commands in."""

import os
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


@pytest.fixture()
def ros():
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=100 + (os.getpid() + 37) % 100)
    yield context
    rclpy.shutdown(context=context)


def _spin(context, nodes):
    from rclpy.executors import MultiThreadedExecutor

    ex = MultiThreadedExecutor(num_threads=2, context=context)
    for n in nodes:
        ex.add_node(n)
    t = threading.Thread(target=ex.spin, daemon=True)
    t.start()
    return ex, t


def _wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_arm_node_clamps_jumps_holds_on_watchdog_and_hold_and_stops_safely(ros):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState

    from arx_x5_driver.arm_node import ArmNode
    from habc_interfaces.msg import ArmCommand, ControlAuthority

    arm = ArmNode(
        context=ros,
        parameter_overrides=[
            Parameter("backend", value="kinematic"),
            Parameter("action_space", value="joint"),
            Parameter("control_hz", value=50.0),
            Parameter("max_joint_step", value=0.05),
            Parameter("watchdog_s", value=0.2),
        ],
    )
    probe = Node("probe", context=ros)
    states = []
    probe.create_subscription(JointState, "/left_arm/joint_states", states.append, 10)
    cmd_pub = probe.create_publisher(ArmCommand, "/left_arm/command", 10)
    qos = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    auth_pub = probe.create_publisher(ControlAuthority, "/control_authority", qos)
    ex, thread = _spin(ros, [arm, probe])
    backend = arm.backend
    try:
        assert _wait(lambda: len(states) > 3 and cmd_pub.get_subscription_count() > 0)

        def send(q, authority=0):
            m = ArmCommand(mode=0, targets=list(q), gripper=0.05, authority=authority)
            cmd_pub.publish(m)

        # a 1 rad jump: executed as 0.05 rad steps, never at once
        for _ in range(8):
            send([1.0, 0, 0, 0, 0, 0])
            time.sleep(0.02)
        assert _wait(lambda: backend.sent["left"] and backend.sent["left"][-1].targets[0] > 0.1)
        sent = [c.targets[0] for c in backend.sent["left"]]
        assert max(np.diff(sent)) <= 0.05 + 1e-9
        assert arm.safety["left"].clamp_count > 0
        # watchdog: commands stop -> the target freezes where it was
        time.sleep(0.4)
        frozen = backend.sent["left"][-1]
        assert frozen.authority == 2  # HOLD
        time.sleep(0.1)
        assert backend.sent["left"][-1].targets[0] == pytest.approx(frozen.targets[0])
        # HOLD authority on /control_authority: fresh commands are not executed
        auth_pub.publish(ControlAuthority(arm_names=["left", "right"], authority=[2, 2]))
        assert _wait(lambda: "left" in arm._held_by_authority)
        for _ in range(10):
            send([0.0, 0, 0, 0, 0, 0])
            time.sleep(0.02)
        assert backend.sent["left"][-1].targets[0] == pytest.approx(frozen.targets[0])
        assert js_positions_published(states)
        refused = arm.set_parameters([Parameter("watchdog_s", value=5.0)])[0]
        assert not refused.successful and "restart" in refused.reason
    finally:
        arm.safe_stop()
        ex.shutdown(timeout_sec=2.0)
        thread.join(timeout=2.0)
        arm.destroy_node()
        probe.destroy_node()
    assert backend.stopped and backend.closed  # safe state on shutdown


def js_positions_published(states) -> bool:
    return all(len(s.position) == 7 and s.name[-1] == "gripper" for s in states)


def test_missing_can_interface_is_a_clear_error_naming_it(ros):
    from rclpy.parameter import Parameter

    from arx_x5_driver.arm_node import ArmNode
    from arx_x5_driver.real_backend import CanInterfaceError

    with pytest.raises(CanInterfaceError, match="can_habc_missing0"):
        ArmNode(
            context=ros,
            parameter_overrides=[
                Parameter("backend", value="arx5"),
                Parameter("can_interfaces", value=["can_habc_missing0", "can_habc_missing1"]),
            ],
        )
