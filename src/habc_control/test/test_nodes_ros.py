"""Teleop and camera nodes in-process with fakes at the device boundary (evdev, pyrealsense2)."""

import time

import pytest
from evdev import InputEvent, ecodes
from test_camera import FakeRS
from test_teleop import FlakyDevice

pytestmark = pytest.mark.ros

KEY_A = ecodes.ecodes["KEY_A"]


def test_teleop_pedal_press_loss_and_heartbeat_on_control_authority(ros, spin, wait_until):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from arx_x5_driver.qos import AUTHORITY_QOS
    from habc_control.teleop_node import TeleopNode
    from habc_interfaces.msg import ControlAuthority

    pedal = FlakyDevice()
    teleop = TeleopNode(
        open_device=lambda path: pedal,
        context=ros,
        parameter_overrides=[
            Parameter("input", value="pedal"),
            Parameter("pedal_device", value="usb-Foot-event-kbd"),
            Parameter("pedal_keys", value=["left:KEY_A"]),
            Parameter("heartbeat_s", value=0.2),
        ],
    )
    probe = Node("probe", context=ros)
    got = []
    # a late subscriber still gets the current state: transient-local
    time.sleep(0.2)
    probe.create_subscription(ControlAuthority, "/control_authority", got.append, AUTHORITY_QOS)
    spin(ros, [teleop, probe])
    assert wait_until(lambda: got and list(got[-1].authority) == [0, 0])
    pedal.queue.append(InputEvent(0, 0, ecodes.EV_KEY, KEY_A, 1))
    assert wait_until(lambda: list(got[-1].authority) == [1, 0] and got[-1].source == "pedal")
    n0, t0 = len(got), time.monotonic()
    time.sleep(1.0)
    rate = (len(got) - n0) / (time.monotonic() - t0)
    assert rate >= 3.0  # heartbeat every 0.2 s (>= 1 Hz required)
    pedal.unplugged = True
    assert wait_until(lambda: list(got[-1].authority) == [2, 2])
    assert got[-1].arm_names == ["left", "right"]


def test_camera_node_publishes_raw_and_jpeg_and_survives_device_loss(ros, spin, wait_until):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage, Image

    from arx_x5_driver.node_main import bring_up
    from habc_control.camera_node import CameraNode

    rs = FakeRS({"111"})
    cam = CameraNode(
        rs=rs,
        context=ros,
        parameter_overrides=[
            Parameter("names", value=["top"]),
            Parameter("serials", value=["111"]),
            Parameter("width", value=32),
            Parameter("height", value=24),
            Parameter("reconnect_s", value=0.1),
        ],
    )
    bring_up(cam)
    probe = Node("probe", context=ros)
    raw, jpg = [], []
    probe.create_subscription(Image, "/camera/top/color/image_raw", raw.append, 5)
    probe.create_subscription(
        CompressedImage, "/camera/top/color/image_raw/compressed", jpg.append, 5
    )
    spin(ros, [cam, probe])
    assert wait_until(lambda: len(raw) > 2 and len(jpg) > 2)
    assert (raw[-1].height, raw[-1].width, raw[-1].encoding) == (24, 32, "rgb8")
    assert jpg[-1].format == "jpeg" and bytes(jpg[-1].data[:2]) == b"\xff\xd8"
    rs.present.clear()  # unplugged
    time.sleep(0.3)
    n = cam.frames["top"]
    rs.present.add("111")  # back
    assert wait_until(lambda: cam.frames["top"] > n + 2)
