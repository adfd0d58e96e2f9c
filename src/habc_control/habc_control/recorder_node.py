"""Recorder node: every contract topic -> one MCAP bag per episode + sidecar.

Subscribes raw (serialized CDR, no decode) to `habc_core.contract.recorded_topics()` (the
contract plus the mux's requests and the sim's env state) and hands the
bytes to habc_control.recorder.EpisodeRecorder (habc_trainer's EpisodeBagWriter underneath).
/episode/events and /control_authority are also decoded: they open and close bags and mark the
episode intervened. Bag timestamps are receive times, like `ros2 bag record`.
"""

from __future__ import annotations

import importlib
import threading

from rclpy.node import Node
from rclpy.serialization import serialize_message

from arx_x5_driver.node_main import run_node
from arx_x5_driver.qos import AUTHORITY_QOS, EVENTS_QOS, RECORD_IMAGE_QOS, RECORD_QOS
from arx_x5_driver.ros_params import CONTROL_HZ, ParamSpec, declare_params
from habc_control.recorder import EpisodeEventData, EpisodeRecorder, RecorderConfig
from habc_control.ros_common import authority_from_msg, now_ns
from habc_core.contract import (
    AUTHORITY_TOPIC,
    COMPRESSED_IMAGE_TYPE,
    EPISODE_EVENT_TYPE,
    EPISODE_EVENTS_TOPIC,
    IMAGE_TYPE,
    recorded_topics,
    ros_name,
)
from habc_interfaces.msg import ControlAuthority, EpisodeEvent


def get_message(msgtype: str) -> type:
    """ "pkg/msg/Name" -> the generated Python class (rosidl_runtime_py is not on every box)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


PARAMS = {
    "data_root": ParamSpec("data", "root of the episode store"),
    "robot": ParamSpec("arx_x5_bimanual", "robot name in the sidecar"),
    "control_hz": CONTROL_HZ,
    "t_max_steps": ParamSpec(900, "episode step budget T_max", bounds=(1, 10_000_000)),
    "compressed_images": ParamSpec(False, "record the JPEG image topics instead of raw"),
}


class RecorderNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("recorder", **kwargs)
        p = declare_params(self, PARAMS)
        cfg = RecorderConfig(
            data_root=p["data_root"],
            robot=p["robot"],
            control_hz=float(p["control_hz"]),
            t_max_steps=int(p["t_max_steps"]),
        )
        compressed = p["compressed_images"]
        self.recorder = EpisodeRecorder(cfg)
        self._lock = threading.Lock()
        self.create_subscription(
            EpisodeEvent, ros_name(EPISODE_EVENTS_TOPIC), self._on_event, EVENTS_QOS
        )
        self.create_subscription(
            ControlAuthority, ros_name(AUTHORITY_TOPIC), self._on_authority, AUTHORITY_QOS
        )
        for topic, msgtype in recorded_topics(compressed_images=compressed).items():
            if topic in (EPISODE_EVENTS_TOPIC, AUTHORITY_TOPIC):
                continue
            # Images best effort (what camera drivers commonly offer); the bag keeps the
            # contract's absolute name whatever namespace the recorder runs in.
            images = msgtype in (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
            self.create_subscription(
                get_message(msgtype),
                ros_name(topic),
                lambda raw, t=topic, m=msgtype: self._on_raw(t, m, raw),
                RECORD_IMAGE_QOS if images else RECORD_QOS,
                raw=True,
            )
        self.get_logger().info(f"recording episodes under {cfg.data_root}")

    def _on_raw(self, topic: str, msgtype: str, raw: bytes) -> None:
        with self._lock:
            self.recorder.on_message(topic, msgtype, raw, now_ns(self))

    def _on_authority(self, msg: ControlAuthority) -> None:
        with self._lock:
            self.recorder.on_authority(
                authority_from_msg(msg), serialize_message(msg), now_ns(self)
            )

    def _on_event(self, msg: EpisodeEvent) -> None:
        ev = EpisodeEventData(
            int(msg.event),
            now_ns(self),
            msg.episode_id,
            msg.task,
            msg.source,
            msg.outcome,
            int(msg.round),
            int(msg.model_index),
        )
        with self._lock:
            was = self.recorder.bag_dir
            self.recorder.on_event(ev, serialize_message(msg), EPISODE_EVENT_TYPE)
            now = self.recorder.bag_dir
        if now is not None and now != was:
            self.get_logger().info(f"recording {msg.episode_id} -> {now}")
        elif was is not None and now is None:
            self.get_logger().info(f"closed {was} ({msg.outcome})")

    def close(self) -> None:
        with self._lock:
            self.recorder.close()


def main(args=None) -> None:
    run_node(RecorderNode, args)


NODE = RecorderNode
