"""RealSense camera node: /camera/<name>/color/image_raw (Image, rgb8) and .../compressed (JPEG).

Cameras are chosen by serial number (`names` and `serials` in the same order: D455 top, D405
wrists); an empty serial stops the node at startup with the connected devices in the message (no
pick by model: both wrists are D405s, a guess could swap them). In sim the arm driver's sim rig
publishes the same topics instead. Logic: habc_control.camera.

A lifecycle node (`node_main.bring_up` configures and activates it unless `autostart` is false):

* configure: each device is opened and one thread per camera blocks on its frames; a device that
  is missing or lost is re-opened every `reconnect_s` and the log says so (a USB camera comes
  and goes: configure does not fail for it, /diagnostics reports it as an ERROR).
* activate: the frames are published (raw and JPEG); deactivate: no longer published, the
  devices kept open and read (the frame rate stays in /diagnostics).
* cleanup / shutdown (and `close()`, the shutdown hook): the threads end, the devices close.

/diagnostics at 1 Hz, one status per camera: frame rate, frames published, reconnects, the last
error. Parameters are read-only but `jpeg_quality` (safe to change at run time).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image

from arx_x5_driver.diagnostics import (
    DIAGNOSTICS_TOPIC,
    CameraHealth,
    RateMeter,
    camera_status,
)
from arx_x5_driver.messages import diagnostic_array
from arx_x5_driver.node_main import AUTOSTART, ReleasingLifecycle, lifecycle_state, run_node
from arx_x5_driver.qos import IMAGE_PUB_QOS, STATE_QOS
from arx_x5_driver.ros_params import ParamSpec, declare_params, on_dynamic_change
from habc_control.camera import (
    CameraConfig,
    CameraSupervisor,
    RealSenseCamera,
    describe_connected,
    encode_jpeg,
)
from habc_control.ros_common import exit_on_bad_parameter
from habc_core.contract import camera_frame, compressed_image_topic, image_topic, ros_name
from habc_core.features import CAMERA_NAMES

SUCCESS = TransitionCallbackReturn.SUCCESS
# Colour stream limits of the D455 / D405 family's modes (the SDK refuses what a device lacks).
MAX_SIDE_PX = 1920
MAX_FPS = 90

SPECS = {
    "autostart": AUTOSTART,
    "names": ParamSpec(list(CAMERA_NAMES), "camera names", choices=CAMERA_NAMES),
    "serials": ParamSpec(["", "", ""], "serial per camera, in the order of names"),
    "width": ParamSpec(640, "colour width [px]", bounds=(1, MAX_SIDE_PX)),
    "height": ParamSpec(480, "colour height [px]", bounds=(1, MAX_SIDE_PX)),
    "fps": ParamSpec(30, "frames per second", bounds=(1, MAX_FPS)),
    # Only the encoder reads it, per frame: a change at run time is safe.
    "jpeg_quality": ParamSpec(85, "JPEG quality", bounds=(1, 100), dynamic=True),
    "reconnect_s": ParamSpec(1.0, "retry period for a lost camera [s]", bounds=(0.05, 60.0)),
}


class CameraNode(ReleasingLifecycle, LifecycleNode):
    def __init__(self, rs=None, open_stream=None, **kwargs: Any) -> None:
        """`rs` and `open_stream` are passed to each RealSenseCamera (tests: fake or software
        device)."""
        super().__init__("cameras", **kwargs)
        p = declare_params(self, SPECS)
        names, serials = list(p["names"]), list(p["serials"])
        if len(names) != len(serials):
            raise ValueError(f"serials: need one per camera {names}, got {serials}")
        if not all(serials):
            # No pick by model: both wrists are D405s, a guess could swap left and right.
            raise ValueError(
                f"serials: {serials} has an empty entry; set one serial per camera in the order "
                f"of names {names} (D455 top, D405 wrists); connected: {describe_connected(rs)}"
            )
        on_dynamic_change(self, SPECS, self._on_change)
        self.quality = int(p["jpeg_quality"])
        self._configs = [
            CameraConfig(n, s, int(p["width"]), int(p["height"]), int(p["fps"]))
            for n, s in zip(names, serials, strict=True)
        ]
        self._reconnect_s = float(p["reconnect_s"])
        self._rs, self._open_stream = rs, open_stream
        self.transition_error: BaseException | None = None
        self._stop = threading.Event()
        self._publishing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sups: dict[str, CameraSupervisor] = {}
        self._pubs: list[Any] = []
        self._rates = {n: RateMeter() for n in names}
        self.frames = dict.fromkeys(names, 0)  # published, per camera
        # /diagnostics in every state (absolute: the aggregator's topic).
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STATE_QOS)
        self.create_timer(1.0, self._publish_diagnostics)

    def _on_change(self, values: dict[str, Any]) -> None:
        if "jpeg_quality" in values:
            self.quality = int(values["jpeg_quality"])

    # --- lifecycle transitions -------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop = threading.Event()
        now = time.monotonic()
        for cfg in self._configs:
            cam = RealSenseCamera(cfg, self._rs, self._open_stream)
            sup = CameraSupervisor(cam, self._reconnect_s)
            sup.open(now)  # a missing device is logged and retried by its thread
            self._log(sup)
            raw = self.create_publisher(Image, ros_name(image_topic(cfg.name)), IMAGE_PUB_QOS)
            jpg = self.create_publisher(
                CompressedImage, ros_name(compressed_image_topic(cfg.name)), IMAGE_PUB_QOS
            )
            self._pubs += [raw, jpg]
            self._sups[cfg.name] = sup
            t = threading.Thread(target=self._loop, args=(cfg.name, sup, raw, jpg), daemon=True)
            self._threads.append(t)
        for t in self._threads:
            t.start()
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._publishing.set()
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._publishing.clear()
        return SUCCESS

    def close(self) -> None:
        """Shutdown hook: stop publishing, then close the devices."""
        self.finish_lifecycle()

    def _teardown(self) -> None:
        self._publishing.clear()
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2.0)
        self._threads.clear()
        self._sups.clear()
        for pub in self._pubs:
            self.destroy_publisher(pub)
        self._pubs.clear()

    # --- per camera ------------------------------------------------------------------------

    def _log(self, sup: CameraSupervisor) -> None:
        for level, text in sup.messages:
            # One call site per severity: rclpy refuses to change it between calls.
            if level == "error":
                self.get_logger().error(text)
            elif level == "warn":
                self.get_logger().warning(text)
            else:
                self.get_logger().info(text)
        sup.messages.clear()

    def _loop(self, name: str, sup: CameraSupervisor, raw, jpg) -> None:
        while not self._stop.is_set():
            got = sup.read(time.monotonic())
            self._log(sup)
            if got is None:
                self._stop.wait(0.05)
                continue
            if not self._publishing.is_set():
                continue  # inactive: the device is read (kept drained), nothing published
            rgb, _ = got
            stamp = self.get_clock().now().to_msg()
            img = Image()
            img.header.stamp, img.header.frame_id = stamp, camera_frame(name)
            img.height, img.width = rgb.shape[:2]
            img.encoding, img.step = "rgb8", rgb.shape[1] * 3
            img.data = rgb.tobytes()
            raw.publish(img)
            c = CompressedImage()
            c.header = img.header
            c.format = "jpeg"
            c.data = encode_jpeg(rgb, self.quality)
            jpg.publish(c)
            self.frames[name] += 1
        sup.camera.stop()

    def health(self) -> list[CameraHealth]:
        state = lifecycle_state(self)
        now = time.monotonic()
        out = []
        for cfg in self._configs:
            sup = self._sups.get(cfg.name)
            read = sup.frames if sup is not None else 0
            out.append(
                CameraHealth(
                    cfg.name,
                    cfg.serial,
                    state,
                    cfg.fps,
                    self._rates[cfg.name].rate(read, now),
                    self.frames[cfg.name],
                    sup.reconnects if sup is not None else 0,
                    bool(sup is not None and sup.lost),
                    sup.last_error if sup is not None else "",
                )
            )
        return out

    def _publish_diagnostics(self) -> None:
        statuses = [camera_status(self.get_name(), h) for h in self.health()]
        self._diag_pub.publish(diagnostic_array(statuses, self.get_clock().now().to_msg()))


def main(args=None) -> None:
    run_node(exit_on_bad_parameter(CameraNode, "cameras"), args)


NODE = CameraNode
