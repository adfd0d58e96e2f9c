"""RealSense camera core against a fake of the pyrealsense2 API (pipeline, config, context)."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from habc_control.camera import (
    CameraConfig,
    CameraError,
    CameraSupervisor,
    RealSenseCamera,
    encode_jpeg,
)


class FakeRS:
    """The pyrealsense2 names the camera core uses; `present` is the set of plugged serials."""

    camera_info = SimpleNamespace(serial_number="serial_number")
    stream = SimpleNamespace(color="color")
    format = SimpleNamespace(rgb8="rgb8")

    def __init__(self, present):
        self.present = set(present)
        self.enabled = []
        self.fail_next_frame = False
        rs = self

        class _Device:
            def __init__(self, serial):
                self.serial = serial

            def get_info(self, key):
                assert key == "serial_number"
                return self.serial

        class _Context:
            def query_devices(self):
                return [_Device(s) for s in sorted(rs.present)]

        class _Config:
            def enable_device(self, serial):
                self.serial = serial

            def enable_stream(self, stream, w, h, fmt, fps):
                self.stream = (stream, w, h, fmt, fps)

        class _Frame:
            def __init__(self, w, h):
                self.img = np.full((h, w, 3), 7, np.uint8)

            def get_data(self):
                return self.img

            def get_timestamp(self):
                return 123.0

        class _Frames:
            def __init__(self, w, h):
                self.w, self.h = w, h

            def get_color_frame(self):
                return _Frame(self.w, self.h)

        class _Pipeline:
            def start(self, cfg):
                if cfg.serial not in rs.present:
                    raise RuntimeError("No device connected")
                rs.enabled.append((cfg.serial, cfg.stream))
                self.cfg = cfg

            def wait_for_frames(self, timeout_ms):
                if rs.fail_next_frame or self.cfg.serial not in rs.present:
                    rs.fail_next_frame = False
                    raise RuntimeError("Frame didn't arrive within 1000")
                _, w, h, _, _ = self.cfg.stream
                return _Frames(w, h)

            def stop(self):
                pass

        self.context, self.config, self.pipeline = _Context, _Config, _Pipeline


def test_config_requires_serial():
    with pytest.raises(ValueError, match="serial"):
        CameraConfig("top", "")


def test_missing_serial_is_named_with_what_is_connected():
    cam = RealSenseCamera(CameraConfig("top", "111"), rs=FakeRS({"222"}))
    with pytest.raises(CameraError, match="111.*222"):
        cam.start()


def test_reads_rgb_frames_from_the_chosen_device():
    rs = FakeRS({"111", "222"})
    cam = RealSenseCamera(CameraConfig("left_wrist", "222", 64, 48, 30), rs=rs)
    cam.start()
    assert rs.enabled == [("222", ("color", 64, 48, "rgb8", 30))]
    img, stamp = cam.read()
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and stamp == 123.0
    jpg = encode_jpeg(img)
    back = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
    assert back.shape == (48, 64, 3)


def test_device_loss_is_reported_and_reconnects():
    rs = FakeRS({"111"})
    sup = CameraSupervisor(RealSenseCamera(CameraConfig("top", "111", 8, 6), rs=rs), 1.0)
    assert sup.read(0.0) is not None
    rs.present.clear()  # unplugged
    assert sup.read(0.1) is None and sup.lost
    assert any("lost" in text for _, text in sup.messages)
    assert sup.read(0.5) is None  # waits reconnect_s
    rs.present.add("111")
    assert sup.read(1.2) is not None and not sup.lost
    assert any("reconnected" in text for _, text in sup.messages)
    # what the node's diagnostics report
    assert (sup.frames, sup.reconnects) == (2, 1) and "lost" in sup.last_error
