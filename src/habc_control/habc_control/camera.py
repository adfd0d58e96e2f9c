"""RealSense colour cameras chosen by serial number, with reconnect. No rclpy.

`RealSenseCamera` wraps one pyrealsense2 pipeline (the module is injected so tests use a fake at
the API boundary; `open_stream` swaps the pipeline for another frame source, e.g. a
`SensorStream` over pyrealsense2's `software_device`); `CameraSupervisor.read(now)` returns a
frame or None and re-opens a lost device every `reconnect_s`, with messages that say what
happened (device loss is a normal event on a USB rig: cables, hubs, power).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import cv2
import numpy as np


class CameraError(RuntimeError):
    """A camera is missing, or stopped delivering frames."""


@dataclass(frozen=True)
class CameraConfig:
    name: str
    serial: str
    width: int = 640
    height: int = 480
    fps: int = 30
    timeout_ms: int = 1000

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: a camera needs a name (top, left_wrist, ...)")
        if not self.serial:
            raise ValueError(f"serial: camera {self.name!r} needs its device serial number")
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(f"width/height/fps: must be > 0 for camera {self.name!r}")


def _import_rs() -> ModuleType:
    import pyrealsense2 as rs  # needs libusb; only where cameras are really used

    return rs


def connected_serials(rs: Any) -> list[str]:
    return [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]


def describe_connected(rs: Any | None = None) -> str:
    """'serial (model), ...' of the connected RealSense devices, for a message that asks for
    serials; never raises (no pyrealsense2 or no USB access is said in the text)."""
    try:
        rs = rs if rs is not None else _import_rs()
        info = rs.camera_info
        found = [
            f"{d.get_info(info.serial_number)} ({d.get_info(info.name)})"
            for d in rs.context().query_devices()
        ]
    except (ImportError, RuntimeError) as exc:
        return f"unknown ({exc})"
    return ", ".join(found) or "none"


class FrameStream(Protocol):
    """What the camera reads from: the part of `rs.pipeline` it uses once started."""

    def wait_for_frames(self, timeout_ms: int) -> Any: ...

    def stop(self) -> None: ...


class SensorStream:
    """An `rs.sensor` opened on one profile and started into an `rs.syncer`, read like a pipeline.

    For devices a pipeline cannot open by serial: pyrealsense2 2.59's `software_device` is not
    listed by a context after `add_to(ctx)`, so `pipeline.start` reports "No device connected".
    """

    def __init__(self, rs: Any, sensor: Any, profile: Any) -> None:
        self._sensor = sensor
        self._sync = rs.syncer()
        sensor.open(profile)
        sensor.start(self._sync)

    def wait_for_frames(self, timeout_ms: int) -> Any:
        return self._sync.wait_for_frames(timeout_ms)

    def stop(self) -> None:
        self._sensor.stop()
        self._sensor.close()


def rgb_from_frames(frames: Any, width: int, height: int) -> tuple[np.ndarray, float]:
    """The colour frame of a frameset as an owned (height, width, 3) uint8 RGB copy, and its
    device timestamp [ms]."""
    color = frames.get_color_frame()
    if not color:
        raise CameraError("frameset has no colour frame")
    img = np.asanyarray(color.get_data())
    if img.size != height * width * 3:
        raise CameraError(f"colour frame has {img.size} values, expected {height}x{width}x3")
    return img.reshape(height, width, 3).copy(), float(color.get_timestamp())


class RealSenseCamera:
    def __init__(
        self,
        config: CameraConfig,
        rs: Any | None = None,
        open_stream: Callable[[CameraConfig], FrameStream] | None = None,
    ) -> None:
        """`open_stream(config)` replaces the pipeline opened by serial; it raises CameraError
        when the device is not there."""
        self.config = config
        self.rs = rs if rs is not None else _import_rs()
        self._open_stream = open_stream
        self._pipe: FrameStream | None = None

    @property
    def running(self) -> bool:
        return self._pipe is not None

    def start(self) -> None:
        if self._open_stream is not None:
            self._pipe = self._open_stream(self.config)
            return
        rs, c = self.rs, self.config
        serials = connected_serials(rs)
        if c.serial not in serials:
            raise CameraError(
                f"camera {c.name!r}: no RealSense with serial {c.serial} (connected: "
                f"{serials or 'none'})"
            )
        pipe = rs.pipeline()
        cfg = rs.config()
        cfg.enable_device(c.serial)
        cfg.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, c.fps)
        try:
            pipe.start(cfg)
        except RuntimeError as exc:
            raise CameraError(f"camera {c.name!r} ({c.serial}) failed to start: {exc}") from exc
        self._pipe = pipe

    def read(self) -> tuple[np.ndarray, float]:
        """(h, w, 3) uint8 RGB and the device timestamp [ms]; CameraError when it is gone."""
        if self._pipe is None:
            raise CameraError(f"camera {self.config.name!r} is not started")
        try:
            frames = self._pipe.wait_for_frames(self.config.timeout_ms)
        except RuntimeError as exc:
            self.stop()
            raise CameraError(
                f"camera {self.config.name!r} ({self.config.serial}) lost: {exc}"
            ) from exc
        return rgb_from_frames(frames, self.config.width, self.config.height)

    def stop(self) -> None:
        if self._pipe is not None:
            try:
                self._pipe.stop()
            except RuntimeError:
                pass  # already stopped by the device loss
            self._pipe = None


class CameraSupervisor:
    def __init__(self, camera: RealSenseCamera, reconnect_s: float = 1.0) -> None:
        self.camera = camera
        self.reconnect_s = reconnect_s
        self._next_try = -math.inf
        self.lost = False
        self.messages: list[tuple[str, str]] = []  # (level, text) for the node to log
        # For the node's diagnostics: frames delivered, re-opens after a loss, the last error.
        self.frames = 0
        self.reconnects = 0
        self.last_error = ""

    def open(self, now: float) -> bool:
        """Start the device unless it runs or its retry time has not come; whether it runs."""
        if self.camera.running:
            return True
        if now < self._next_try:
            return False
        self._next_try = now + self.reconnect_s
        try:
            self.camera.start()
        except CameraError as exc:
            if not self.lost:
                self.messages.append(("error", f"{exc}; retrying every {self.reconnect_s} s"))
            self.lost = True
            self.last_error = str(exc)
            return False
        name = self.camera.config.name
        if self.lost:
            self.reconnects += 1
            self.messages.append(("warn", f"camera {name!r} reconnected"))
        else:
            self.messages.append(("info", f"camera {name!r} started"))
        self.lost = False
        return True

    def read(self, now: float) -> tuple[np.ndarray, float] | None:
        if not self.open(now):
            return None
        try:
            got = self.camera.read()
        except CameraError as exc:
            self.lost = True
            self.last_error = str(exc)
            self._next_try = now + self.reconnect_s
            self.messages.append(("error", f"{exc}; reconnecting"))
            return None
        self.frames += 1
        return got


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CameraError("JPEG encoding failed")
    return buf.tobytes()
