"""The arm driver as a lifecycle node (kinematic backend): nothing reaches the arms before
activate, deactivate holds, /diagnostics per arm, parameters with ranges and read-only."""

import time

import pytest

pytestmark = pytest.mark.ros


def _arm(ros, **overrides):
    from rclpy.parameter import Parameter

    from arx_x5_driver.arm_node import ArmNode

    params = {"backend": "kinematic", "action_space": "joint", "control_hz": 50.0}
    params.update(overrides)
    return ArmNode(
        context=ros, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )


def _request(q0: float):
    from habc_interfaces.msg import ArmCommand

    return ArmCommand(mode=0, targets=[q0, 0, 0, 0, 0, 0], gripper=0.05)


def test_inactive_sends_nothing_active_executes_deactivate_holds_and_reactivate_resumes(
    ros, spin, wait_until
):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from arx_x5_driver.node_main import lifecycle_state
    from habc_interfaces.msg import ArmCommand

    ok = TransitionCallbackReturn.SUCCESS
    arm = _arm(ros, max_joint_step=0.05)
    assert lifecycle_state(arm) == "unconfigured" and arm.backend is None
    probe = Node("probe", context=ros)
    states, executed = [], []
    probe.create_subscription(JointState, "/left_arm/joint_states", states.append, 10)
    probe.create_subscription(ArmCommand, "/left_arm/command", executed.append, 10)
    req = probe.create_publisher(ArmCommand, "/left_arm/command_request", 10)
    spin(ros, [arm, probe])

    # configured, not activated: the state streams run, the arm gets nothing
    assert arm.trigger_configure() == ok and lifecycle_state(arm) == "inactive"
    backend = arm.backend
    assert wait_until(lambda: len(states) > 3 and req.get_subscription_count() > 0, 30.0)
    for _ in range(10):
        req.publish(_request(1.0))
        time.sleep(0.02)
    ticks = arm.ticks
    assert wait_until(lambda: arm.ticks >= ticks + 5, 30.0)
    assert backend.sent == {"left": [], "right": []} and not backend.enabled
    assert executed == []

    # active: the requests flow through the safety core (0.05 rad per tick)
    assert arm.trigger_activate() == ok and backend.enabled

    def moved_past(q):
        return backend.sent["left"] and backend.sent["left"][-1].targets[0] > q

    deadline = time.monotonic() + 30.0
    while not moved_past(0.2) and time.monotonic() < deadline:
        req.publish(_request(1.0))
        time.sleep(0.02)
    assert moved_past(0.2)

    # deactivate: every arm holds where it is; requests are ignored, HOLD is sent each tick
    assert arm.trigger_deactivate() == ok and lifecycle_state(arm) == "inactive"
    n = len(backend.sent["left"])
    frozen = backend.sent["left"][n - 1].targets[0]
    for _ in range(10):
        req.publish(_request(1.0))
        time.sleep(0.02)
    assert wait_until(lambda: len(backend.sent["left"]) >= n + 10, 30.0)
    held = backend.sent["left"][n:]
    assert all(c.authority == 2 and c.targets[0] == pytest.approx(frozen) for c in held)
    assert frozen < 1.0  # it was still moving: a held arm really stopped short of the target

    # activate again: a fresh request moves it on from where it held
    assert arm.trigger_activate() == ok
    deadline = time.monotonic() + 30.0
    while not moved_past(frozen + 0.04) and time.monotonic() < deadline:
        req.publish(_request(1.0))
        time.sleep(0.02)
    assert moved_past(frozen + 0.04)
    # the right arm never had a request: the holds it was sent while inactive are no command
    # stream that could go silent after reactivation
    ticks = arm.ticks
    assert wait_until(lambda: arm.ticks >= ticks + 20, 30.0)  # 0.4 s > watchdog_s
    assert arm.core.counters("right").watchdog_trips == 0


def test_diagnostics_report_a_watchdog_trip_per_arm(ros, spin, wait_until):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rclpy.node import Node

    from arx_x5_driver.node_main import bring_up
    from habc_interfaces.msg import ArmCommand

    arm = bring_up(_arm(ros, watchdog_s=0.1))
    probe = Node("probe", context=ros)
    diags: list[DiagnosticArray] = []
    probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    req = probe.create_publisher(ArmCommand, "/left_arm/command_request", 10)
    spin(ros, [arm, probe])
    assert wait_until(lambda: req.get_subscription_count() > 0, 30.0)
    for _ in range(10):  # a short command stream, then silence
        req.publish(_request(0.01))
        time.sleep(0.02)

    def status(name):
        for msg in reversed(diags):
            for s in msg.status:
                if s.name == name:
                    return s, {kv.key: kv.value for kv in s.values}
        return None, {}

    def tripped():
        s, values = status("arm_driver: left")
        return s is not None and values["watchdog_trips"] == "1"

    assert wait_until(tripped, 30.0)
    left, values = status("arm_driver: left")
    assert left.level == DiagnosticStatus.WARN and values["watchdog_holding"] == "true"
    assert left.hardware_id == "kinematic:left" and values["lifecycle_state"] == "active"
    assert values["clamp_count"] == "0" and values["tracking_fault"] == ""
    assert float(values["tick_rate_hz"]) > 0 and int(values["overruns"]) >= 0
    # the right arm never had a command stream: nothing went silent
    _right, rvalues = status("arm_driver: right")
    assert rvalues["watchdog_trips"] == "0" and rvalues["watchdog_holding"] == "false"


def test_a_parameter_out_of_its_range_is_refused_at_startup_naming_the_range(ros):
    with pytest.raises(ValueError, match=r"^watchdog_s: out of range \[0\.0, 0\.25\]"):
        _arm(ros, watchdog_s=0.5)
    with pytest.raises(ValueError, match=r"^joint_margin: out of range \[0\.05, "):
        _arm(ros, joint_margin=0.0)
    with pytest.raises(ValueError, match=r"^backend: 'mujoco' is not one of"):
        _arm(ros, backend="mujoco")
    with pytest.raises(ValueError, match=r"^workspace_max: \[0\.6, 0\.45, 0\.9\] reaches outside"):
        _arm(ros, workspace_max=[0.6, 0.45, 0.9])
    # a profile may tighten: accepted as given
    arm = _arm(ros, watchdog_s=0.2, workspace_max=[0.5, 0.4, 0.5])
    try:
        assert arm.safety_config.watchdog_s == 0.2
        assert arm.safety_config.workspace_max == (0.5, 0.4, 0.5)
    finally:
        arm.destroy_node()


def test_every_driver_parameter_is_read_only_with_its_range_described(ros):
    from rclpy.parameter import Parameter

    from arx_x5_driver.safety import UPPER_BOUNDS, SafetyConfig

    arm = _arm(ros)
    try:
        names = [n for n in arm.list_parameters([], 0).names if n != "use_sim_time"]
        assert {"autostart", "backend", "watchdog_s", "workspace_min"} <= set(names)
        assert all(d.read_only for d in arm.describe_parameters(names))
        shipped = SafetyConfig()
        for name in UPPER_BOUNDS:
            (d,) = arm.describe_parameters([name])
            r = d.floating_point_range[0]
            assert (r.from_value, r.to_value) == (0.0, getattr(shipped, name)), name
        refused = arm.set_parameters([Parameter("watchdog_s", value=0.1)])[0]
        assert not refused.successful and "read-only" in refused.reason
        assert arm.get_parameter("watchdog_s").value == shipped.watchdog_s
    finally:
        arm.destroy_node()
