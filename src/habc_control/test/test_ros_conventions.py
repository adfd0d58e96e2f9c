"""ROS conventions of the control nodes: best-effort image publishers are received, names are
relative (a namespace applies, the bag keeps the contract's names), parameters have bounds and
choices, and only the dynamic ones change at run time."""

import numpy as np
import pytest

pytestmark = pytest.mark.ros

TOP = "/camera/top/color/image_raw"


def _image(stamp_node):
    from sensor_msgs.msg import Image

    img = Image()
    img.header.stamp = stamp_node.get_clock().now().to_msg()
    img.height, img.width, img.encoding, img.step = 8, 8, "rgb8", 24
    img.data = np.zeros((8, 8, 3), np.uint8).tobytes()
    return img


def _best_effort_camera(ros, name: str, topic: str):
    """A camera driver's publisher as realsense2_camera commonly offers it: BEST_EFFORT."""
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node = Node(name, context=ros)
    return node, node.create_publisher(Image, topic, qos_profile_sensor_data)


def test_policy_node_receives_a_best_effort_camera(ros, spin, wait_until):
    from rclpy.parameter import Parameter

    from habc_control.policy_node import PolicyNode

    policy = PolicyNode(
        context=ros,
        parameter_overrides=[
            Parameter("cameras", value=["top"]),
            Parameter("image_size", value=4),
        ],
    )
    cam, pub = _best_effort_camera(ros, "fake_realsense", TOP)
    spin(ros, [policy, cam])

    def received() -> bool:
        pub.publish(_image(cam))
        return "top" in policy._images.fresh(_now(policy))

    assert wait_until(received, timeout=10.0)
    assert policy._images.fresh(_now(policy))["top"].shape == (4, 4, 3)


def _now(node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


def test_recorder_in_a_namespace_records_a_best_effort_camera_under_the_contract_name(
    ros, spin, wait_until, tmp_path
):
    from rclpy.parameter import Parameter

    from habc_control.recorder_node import RecorderNode

    rec = RecorderNode(
        context=ros,
        namespace="rig1",
        parameter_overrides=[Parameter("data_root", value=str(tmp_path))],
    )
    seen = []
    rec._on_raw = lambda topic, msgtype, raw: seen.append((topic, msgtype, len(raw)))
    cam, pub = _best_effort_camera(ros, "fake_realsense", "/rig1" + TOP)
    spin(ros, [rec, cam])

    def received() -> bool:
        pub.publish(_image(cam))
        return bool(seen)

    assert wait_until(received, timeout=10.0)
    topic, msgtype, size = seen[0]
    assert (topic, msgtype) == (TOP, "sensor_msgs/msg/Image") and size > 8 * 8 * 3
    assert "/rig1/episode/events" in dict(
        rec.get_subscriber_names_and_types_by_node("recorder", "/rig1")
    )


@pytest.mark.parametrize(
    ("node", "parameter", "value", "message"),
    [
        ("mux", "policy_timeout_s", 5.0, "policy_timeout_s: out of range [0.01, 0.5]"),
        ("mux", "blend_steps", -1, "blend_steps: out of range [0, 300]"),
        ("mux", "action_space", "cartesian", "action_space: 'cartesian' is not one of"),
        ("teleop", "input", "joystick", "input: 'joystick' is not one of"),
        ("teleop", "heartbeat_s", 3.0, "heartbeat_s: out of range [0.05, 1.0]"),
        ("policy", "execute_steps", 0, "execute_steps: out of range [1, 1000]"),
        ("policy", "cameras", ["top", "wrist"], "cameras: 'wrist' is not one of"),
        ("recorder", "control_hz", 0.0, "control_hz: out of range [1.0, 500.0]"),
    ],
)
def test_a_parameter_outside_its_range_or_choices_is_refused_with_them(
    ros, node, parameter, value, message
):
    from rclpy.parameter import Parameter

    from habc_control.mux_node import MuxNode
    from habc_control.policy_node import PolicyNode
    from habc_control.recorder_node import RecorderNode
    from habc_control.teleop_node import TeleopNode

    make = {"mux": MuxNode, "teleop": TeleopNode, "policy": PolicyNode, "recorder": RecorderNode}
    with pytest.raises(ValueError) as info:
        make[node](context=ros, parameter_overrides=[Parameter(parameter, value=value)])
    assert str(info.value).startswith(message), str(info.value)


def test_only_the_task_prompt_changes_at_run_time(ros):
    from rclpy.parameter import Parameter

    from habc_control.mux_node import MuxNode
    from habc_control.policy_node import PolicyNode

    policy = PolicyNode(context=ros)
    mux = MuxNode(context=ros)
    try:
        ok = policy.set_parameters([Parameter("task", value="fold the towel")])[0]
        assert ok.successful and policy.task == "fold the towel"
        for node, name, value in [(policy, "horizon", 40), (mux, "blend_steps", 3)]:
            refused = node.set_parameters([Parameter(name, value=value)])[0]
            assert not refused.successful and "read-only" in refused.reason
        (described,) = mux.describe_parameters(["policy_timeout_s"])
        assert described.read_only and described.floating_point_range[0].to_value == 0.5
    finally:
        policy.shutdown()
        policy.destroy_node()
        mux.destroy_node()
