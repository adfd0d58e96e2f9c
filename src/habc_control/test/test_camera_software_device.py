"""Camera core and node against the real pyrealsense2 library: a `software_device` colour sensor.

Frames are injected with `on_video_frame` and come back through `rs.syncer`, librealsense's own
frame objects and `get_color_frame()`; the camera opens them through `SensorStream` because a
pipeline cannot start on a software device in pyrealsense2 2.59 (the first test pins that).
Opening a real device by serial is covered by test_camera.py's fake of the pipeline API.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pyrealsense2 as rs
import pytest

from habc_control.camera import (
    CameraConfig,
    CameraError,
    CameraSupervisor,
    RealSenseCamera,
    SensorStream,
    encode_jpeg,
)

W, H = 64, 48
SERIAL = "213522250000"  # a D455-style serial


def picture(n: int) -> np.ndarray:
    """A smooth (H, W, 3) RGB picture, different per frame n and per channel."""
    y, x = np.mgrid[0:H, 0:W]
    r = 40 + 2 * x + n
    g = 60 + 3 * y
    b = np.full_like(x, 180 - 5 * (n % 10))
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


class SoftwareCamera:
    """A software RealSense (serial, one rgb8 colour stream) that can be unplugged."""

    def __init__(self, serial: str = SERIAL) -> None:
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.name, "Intel RealSense D455 (software)")
        self.sensor = self.device.add_sensor("RGB Camera")
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = rs.stream.color, 0, 0
        vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = W, H, 30, 3, rs.format.rgb8
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, 60, 60, W / 2, H / 2
        vs.intrinsics = intr
        self.profile = self.sensor.add_video_stream(vs).as_video_stream_profile()
        self.serial = serial
        self.plugged = True
        self.opened = 0
        self.sent: dict[float, np.ndarray] = {}  # timestamp [ms] -> picture
        self._n = 0

    def open(self, config: CameraConfig) -> SensorStream:
        if not self.plugged or config.serial != self.serial:
            raise CameraError(f"camera {config.name!r}: no RealSense with serial {config.serial}")
        self.opened += 1
        stream = SensorStream(rs, self.sensor, self.profile)
        self.push()  # a started device streams
        return stream

    def push(self) -> tuple[np.ndarray, float]:
        """Inject the next frame as the device would deliver it; returns (picture, stamp)."""
        img, stamp = picture(self._n), 1000.0 + 33.0 * self._n
        f = rs.software_video_frame()
        f.pixels, f.bpp, f.stride = img, 3, W * 3
        f.timestamp, f.domain = stamp, rs.timestamp_domain.hardware_clock
        f.frame_number, f.profile = self._n, self.profile
        self.sent[stamp] = img
        self._n += 1
        self.sensor.on_video_frame(f)
        return img, stamp


def _config(**kw) -> CameraConfig:
    return CameraConfig("top", SERIAL, W, H, 30, **kw)


def test_a_pipeline_cannot_open_the_software_device_by_serial():
    cam = SoftwareCamera()
    ctx = rs.context()
    cam.device.add_to(ctx)
    cfg = rs.config()
    cfg.enable_device(SERIAL)
    cfg.enable_stream(rs.stream.color, W, H, rs.format.rgb8, 30)
    with pytest.raises(RuntimeError, match="No device connected"):
        rs.pipeline(ctx).start(cfg)


def test_core_returns_the_injected_rgb_frames_and_jpeg_decodes_to_them():
    dev = SoftwareCamera()
    cam = RealSenseCamera(_config(), rs=rs, open_stream=dev.open)
    cam.start()
    try:
        stamps = []
        for _ in range(3):
            img, stamp = cam.read()
            assert img.shape == (H, W, 3) and img.dtype == np.uint8
            np.testing.assert_array_equal(img, dev.sent[stamp])  # RGB order, no row/col mix-up
            stamps.append(stamp)
            dev.push()
        assert stamps == sorted(dev.sent)[:3]  # every injected frame, in order
        back = cv2.imdecode(np.frombuffer(encode_jpeg(img), np.uint8), cv2.IMREAD_COLOR)
        back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB)
        err = np.abs(back.astype(int) - img.astype(int))
        assert back.shape == (H, W, 3)
        assert err.mean() < 3.0 and err.max() < 30  # a channel swap would be off by 100+
    finally:
        cam.stop()


def test_supervisor_reports_a_lost_software_device_and_reconnects():
    dev = SoftwareCamera()
    cam = RealSenseCamera(_config(timeout_ms=200), rs=rs, open_stream=dev.open)
    sup = CameraSupervisor(cam, reconnect_s=1.0)
    got = sup.read(0.0)
    assert got is not None and np.array_equal(got[0], dev.sent[got[1]])
    assert sup.messages == [("info", "camera 'top' started")]
    sup.messages.clear()
    dev.plugged = False  # unplugged: no more frames, and it cannot be opened
    assert sup.read(0.2) is None and sup.lost and not cam.running
    assert any("lost" in text for _, text in sup.messages)
    assert sup.read(0.5) is None and dev.opened == 1  # waits reconnect_s before retrying
    assert sup.read(1.3) is None and dev.opened == 1  # retried, still missing
    dev.plugged = True
    sup.messages.clear()
    got = sup.read(2.4)
    assert got is not None and got[0].shape == (H, W, 3) and not sup.lost
    assert dev.opened == 2
    assert sup.messages == [("warn", "camera 'top' reconnected")]
    cam.stop()


@pytest.mark.ros
def test_node_publishes_software_device_frames_as_image_and_jpeg():
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage, Image

    from arx_x5_driver.node_main import bring_up
    from habc_control.camera_node import CameraNode

    dev = SoftwareCamera()
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            dev.push()
            stop.wait(0.02)

    feeder = threading.Thread(target=stream, daemon=True)
    context = Context()
    rclpy.init(context=context, domain_id=100 + (threading.get_native_id() + 71) % 100)
    cam = CameraNode(
        open_stream=dev.open,
        rs=rs,
        context=context,
        parameter_overrides=[
            Parameter("names", value=["top"]),
            Parameter("serials", value=[SERIAL]),
            Parameter("width", value=W),
            Parameter("height", value=H),
        ],
    )
    bring_up(cam)
    probe = Node("probe", context=context)
    raw: list[Image] = []
    jpg: list[CompressedImage] = []
    probe.create_subscription(Image, "/camera/top/color/image_raw", raw.append, 5)
    probe.create_subscription(
        CompressedImage, "/camera/top/color/image_raw/compressed", jpg.append, 5
    )
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(probe)
    feeder.start()
    try:
        deadline = time.monotonic() + 20.0
        while (len(raw) < 3 or len(jpg) < 3) and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
        assert len(raw) >= 3 and len(jpg) >= 3
        msg = raw[-1]
        assert (msg.height, msg.width, msg.encoding, msg.step) == (H, W, "rgb8", W * 3)
        assert msg.header.frame_id == "top_color_optical_frame"
        img = np.frombuffer(bytes(msg.data), np.uint8).reshape(H, W, 3)
        assert any(np.array_equal(img, sent) for sent in dev.sent.values())
        assert jpg[-1].format == "jpeg"
        back = cv2.imdecode(np.frombuffer(bytes(jpg[-1].data), np.uint8), cv2.IMREAD_COLOR)
        back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB)
        err = [np.abs(back.astype(int) - s.astype(int)).mean() for s in dev.sent.values()]
        assert min(err) < 3.0
    finally:
        stop.set()
        feeder.join(timeout=2.0)
        cam.close()
        ex.shutdown(timeout_sec=2.0)
        cam.destroy_node()
        probe.destroy_node()
        rclpy.shutdown(context=context)
