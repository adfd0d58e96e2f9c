"""The arm driver node in-process (kinematic backend): state out, requests through the safety core
in, the executed command (with the safety bits that shaped it) out."""

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_arm_node_clamps_jumps_holds_on_watchdog_and_hold_and_stops_safely(ros, spin, wait_until):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState

    from arx_x5_driver.arm_node import ArmNode
    from arx_x5_driver.node_main import bring_up
    from habc_core.contract import SAFETY_HOLD, SAFETY_STEP, SAFETY_WATCHDOG
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
    bring_up(arm)
    probe = Node("probe", context=ros)
    states = []
    probe.create_subscription(JointState, "/left_arm/joint_states", states.append, 10)
    executed = []
    probe.create_subscription(ArmCommand, "/left_arm/command", executed.append, 10)
    cmd_pub = probe.create_publisher(ArmCommand, "/left_arm/command_request", 10)
    qos = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    auth_pub = probe.create_publisher(ControlAuthority, "/control_authority", qos)
    spinning = spin(ros, [arm, probe])
    backend = arm.backend
    try:
        assert wait_until(lambda: len(states) > 3 and cmd_pub.get_subscription_count() > 0)

        received = []  # commands the node has processed, in order
        on_command = arm._on_command

        def counting(a, msg):
            on_command(a, msg)
            received.append(msg)

        arm._on_command = counting
        n_sent = 0

        def send(q, authority=0):
            nonlocal n_sent
            n_sent += 1  # numbered in model_index: requests are depth 1, the newest replaces
            cmd_pub.publish(
                ArmCommand(
                    mode=0, targets=list(q), gripper=0.05, authority=authority, model_index=n_sent
                )
            )

        def all_received():
            # The newest request reaches the node; older ones may be replaced in its depth-1
            # queue (COMMAND_QOS) when they come faster than a loaded executor takes them.
            return wait_until(
                lambda: bool(received) and received[-1].model_index == n_sent, timeout=30.0
            )

        def sent_from(i):
            return backend.sent["left"][i:]

        # a 1 rad jump: executed as 0.05 rad steps, never at once (commanded until it moves)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            send([1.0, 0, 0, 0, 0, 0])
            time.sleep(0.02)
            if backend.sent["left"] and backend.sent["left"][-1].targets[0] > 0.1:
                break
        assert all_received()
        sent = [c.targets[0] for c in backend.sent["left"]]
        assert max(sent) > 0.1 and max(np.diff(sent)) <= 0.05 + 1e-9
        assert arm.core.safety["left"].clamp_count > 0
        # what the driver publishes as executed is what it sent, with the step bit set
        assert wait_until(lambda: any(m.safety & SAFETY_STEP for m in executed), timeout=30.0)
        clamped = next(m for m in executed if m.safety & SAFETY_STEP)
        assert 0.0 < clamped.targets[0] < 1.0 and clamped.header.frame_id == "left_base_link"
        # watchdog: commands stop -> HOLD, and the target freezes where it was. Ticks are counted,
        # not timed: a tick after the last command was processed starts the search.
        n0 = len(backend.sent["left"]) + 1
        assert wait_until(lambda: any(c.authority == 2 for c in sent_from(n0)), timeout=30.0)
        k = n0 + next(i for i, c in enumerate(sent_from(n0)) if c.authority == 2)
        frozen = backend.sent["left"][k]
        assert wait_until(lambda: len(backend.sent["left"]) >= k + 5, timeout=30.0)
        assert all(c.authority == 2 for c in sent_from(k))
        assert all(c.targets[0] == pytest.approx(frozen.targets[0]) for c in sent_from(k))
        assert wait_until(lambda: any(m.safety & SAFETY_WATCHDOG for m in executed), timeout=30.0)
        assert all(m.authority == 2 for m in executed if m.safety & SAFETY_WATCHDOG)
        # HOLD authority on /control_authority: fresh commands are not executed
        auth_pub.publish(ControlAuthority(arm_names=["left", "right"], authority=[2, 2]))
        assert wait_until(lambda: arm.core.held("left"), timeout=30.0)
        for _ in range(10):
            send([0.0, 0, 0, 0, 0, 0])
            time.sleep(0.02)
        assert all_received()
        n1 = len(backend.sent["left"])
        assert wait_until(lambda: len(backend.sent["left"]) >= n1 + 3, timeout=30.0)
        assert all(c.authority == 2 for c in sent_from(k))
        assert all(c.targets[0] == pytest.approx(frozen.targets[0]) for c in sent_from(k))
        assert wait_until(lambda: executed[-1].safety & SAFETY_HOLD, timeout=30.0)
        assert js_positions_published(states)
        refused = arm.set_parameters([Parameter("watchdog_s", value=5.0)])[0]
        assert not refused.successful and "read-only" in refused.reason
    finally:
        spinning.stop()
    assert backend.stopped and backend.closed  # safe state on shutdown


def js_positions_published(states) -> bool:
    return all(
        len(s.position) == 7 and s.name[0] == "left_joint1" and s.name[-1] == "left_gripper"
        for s in states
    )


def test_missing_can_interface_is_a_clear_error_naming_it(ros):
    from rclpy.parameter import Parameter

    from arx_x5_driver.arm_node import ArmNode
    from arx_x5_driver.node_main import bring_up, lifecycle_state
    from arx_x5_driver.real_backend import CanInterfaceError

    arm = ArmNode(
        context=ros,
        parameter_overrides=[
            Parameter("backend", value="arx5"),
            Parameter("can_interfaces", value=["can_habc_missing0", "can_habc_missing1"]),
        ],
    )
    try:
        # the parameters are fine; the bus is missing: configure fails naming it
        with pytest.raises(CanInterfaceError, match="can_habc_missing0"):
            bring_up(arm)
        assert lifecycle_state(arm) == "finalized"
    finally:
        arm.destroy_node()
