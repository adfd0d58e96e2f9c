"""RealSense camera node: /camera/<name>/color/image_raw (Image, rgb8) and .../compressed (JPEG).

Cameras are chosen by serial number (`names` and `serials` in the same order: D455 top, D405
wrists); an empty serial stops the node at startup with the connected devices in the message (no
pick by model: both wrists are D405s, a guess could swap them). One thread per camera blocks on
frames; a lost device is re-opened every `reconnect_s` and the log says so. In sim the arm
driver's sim rig publishes the same topics instead. Logic: habc_control.camera.
"""

from __future__ import annotations

import threading

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from arx_x5_driver.node_main import run_node
from habc_control.camera import (
    CameraConfig,
    CameraSupervisor,
    RealSenseCamera,
    describe_connected,
    encode_jpeg,
)
from habc_control.ros_common import (
    IMAGE_QOS,
    declare,
    exit_on_bad_parameter,
    refuse_runtime_changes,
)
from habc_core.contract import camera_frame, compressed_image_topic, image_topic


class CameraNode(Node):
    def __init__(self, rs=None, open_stream=None, **kwargs) -> None:
        """`rs` and `open_stream` are passed to each RealSenseCamera (tests: fake or software
        device)."""
        super().__init__("cameras", **kwargs)
        names = list(declare(self, "names", ["top", "left_wrist", "right_wrist"], "camera names"))
        serials = list(declare(self, "serials", ["", "", ""], "serial per camera, same order"))
        w = int(declare(self, "width", 640, "colour width [px]"))
        h = int(declare(self, "height", 480, "colour height [px]"))
        fps = int(declare(self, "fps", 30, "frames per second"))
        self.quality = int(declare(self, "jpeg_quality", 85, "JPEG quality 1..100"))
        reconnect = float(declare(self, "reconnect_s", 1.0, "retry period for a lost camera"))
        if len(names) != len(serials):
            raise ValueError(f"serials: need one per camera {names}, got {serials}")
        if not all(serials):
            # No pick by model: both wrists are D405s, a guess could swap left and right.
            raise ValueError(
                f"serials: {serials} has an empty entry; set one serial per camera in the order "
                f"of names {names} (D455 top, D405 wrists); connected: {describe_connected(rs)}"
            )
        refuse_runtime_changes(self)
        self._stop = threading.Event()
        self._threads = []
        self.frames = dict.fromkeys(names, 0)
        for name, serial in zip(names, serials, strict=True):
            cam = RealSenseCamera(CameraConfig(name, serial, w, h, fps), rs, open_stream)
            sup = CameraSupervisor(cam, reconnect)
            raw = self.create_publisher(Image, image_topic(name), IMAGE_QOS)
            jpg = self.create_publisher(CompressedImage, compressed_image_topic(name), IMAGE_QOS)
            t = threading.Thread(target=self._loop, args=(name, sup, raw, jpg), daemon=True)
            self._threads.append(t)
            t.start()

    def _loop(self, name: str, sup: CameraSupervisor, raw, jpg) -> None:
        while not self._stop.is_set():
            got = sup.read(self.get_clock().now().nanoseconds * 1e-9)
            for level, text in sup.messages:
                # One call site per severity: rclpy refuses to change it between calls.
                if level == "error":
                    self.get_logger().error(text)
                elif level == "warn":
                    self.get_logger().warning(text)
                else:
                    self.get_logger().info(text)
            sup.messages.clear()
            if got is None:
                self._stop.wait(0.05)
                continue
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

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2.0)


def main(args=None) -> None:
    run_node(exit_on_bad_parameter(CameraNode, "cameras"), args)


NODE = CameraNode
