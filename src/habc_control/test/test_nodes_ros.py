"""Teleop and camera nodes in-process with fakes at the device boundary (evdev, pyrealsense2)."""

import errno
import os
import threading
import time

import pytest
from evdev import InputEvent, ecodes
from test_camera import FakeRS

pytestmark = pytest.mark.ros

KEY_A = ecodes.ecodes["KEY_A"]


class FakePedal:
    def __init__(self):
        self.queue, self.unplugged = [], False

    def read_one(self):
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        return self.queue.pop(0) if self.queue else None

    def active_keys(self):
        return []

    def grab(self):
        pass

    def ungrab(self):
        pass

    def close(self):
        pass


@pytest.fixture()
def ros():
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=100 + (os.getpid() + 53) % 100)
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


def test_teleop_pedal_press_loss_and_heartbeat_on_control_authority(ros):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from habc_control.ros_common import AUTHORITY_QOS
    from habc_control.teleop_node import TeleopNode
    from habc_interfaces.msg import ControlAuthority

    pedal = FakePedal()
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
    ex, thread = _spin(ros, [teleop, probe])
    try:
        assert _wait(lambda: got and list(got[-1].authority) == [0, 0])
        pedal.queue.append(InputEvent(0, 0, ecodes.EV_KEY, KEY_A, 1))
        assert _wait(lambda: list(got[-1].authority) == [1, 0] and got[-1].source == "pedal")
        n0, t0 = len(got), time.monotonic()
        time.sleep(1.0)
        rate = (len(got) - n0) / (time.monotonic() - t0)
        assert rate >= 3.0  # heartbeat every 0.2 s (>= 1 Hz required)
        pedal.unplugged = True
        assert _wait(lambda: list(got[-1].authority) == [2, 2])
        assert got[-1].arm_names == ["left", "right"]
    finally:
        ex.shutdown(timeout_sec=2.0)
        thread.join(timeout=2.0)
        teleop.destroy_node()
        probe.destroy_node()


def test_camera_node_publishes_raw_and_jpeg_and_survives_device_loss(ros):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage, Image

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
    probe = Node("probe", context=ros)
    raw, jpg = [], []
    probe.create_subscription(Image, "/camera/top/color/image_raw", raw.append, 5)
    probe.create_subscription(
        CompressedImage, "/camera/top/color/image_raw/compressed", jpg.append, 5
    )
    ex, thread = _spin(ros, [cam, probe])
    try:
        assert _wait(lambda: len(raw) > 2 and len(jpg) > 2)
        assert (raw[-1].height, raw[-1].width, raw[-1].encoding) == (24, 32, "rgb8")
        assert jpg[-1].format == "jpeg" and bytes(jpg[-1].data[:2]) == b"\xff\xd8"
        rs.present.clear()  # unplugged
        time.sleep(0.3)
        n = cam.frames["top"]
        rs.present.add("111")  # back
        assert _wait(lambda: cam.frames["top"] > n + 2)
    finally:
        cam.close()
        ex.shutdown(timeout_sec=2.0)
        thread.join(timeout=2.0)
        cam.destroy_node()
        probe.destroy_node()
