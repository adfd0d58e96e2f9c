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
from habc_control.recorder import EpisodeEventData, EpisodeRecorder, RecorderConfig
from habc_control.ros_common import (
    AUTHORITY_QOS,
    EVENTS_QOS,
    IMAGE_QOS,
    STATE_QOS,
    authority_from_msg,
    declare,
    now_ns,
    refuse_runtime_changes,
)
from habc_core.contract import (
    AUTHORITY_TOPIC,
    EPISODE_EVENT_TYPE,
    EPISODE_EVENTS_TOPIC,
    recorded_topics,
)
from habc_interfaces.msg import ControlAuthority, EpisodeEvent


def get_message(msgtype: str) -> type:
    """ "pkg/msg/Name" -> the generated Python class (rosidl_runtime_py is not on every box)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class RecorderNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("recorder", **kwargs)
        cfg = RecorderConfig(
            data_root=declare(self, "data_root", "data", "root of the episode store"),
            robot=declare(self, "robot", "arx_x5_bimanual", "robot name in the sidecar"),
            control_hz=float(declare(self, "control_hz", 30.0, "control rate [Hz]")),
            t_max_steps=int(declare(self, "t_max_steps", 900, "episode step budget T_max")),
        )
        compressed = declare(self, "compressed_images", False, "record JPEG image topics")
        self.recorder = EpisodeRecorder(cfg)
        self._lock = threading.Lock()
        self.create_subscription(EpisodeEvent, EPISODE_EVENTS_TOPIC, self._on_event, EVENTS_QOS)
        self.create_subscription(
            ControlAuthority, AUTHORITY_TOPIC, self._on_authority, AUTHORITY_QOS
        )
        for topic, msgtype in recorded_topics(compressed_images=compressed).items():
            if topic in (EPISODE_EVENTS_TOPIC, AUTHORITY_TOPIC):
                continue
            qos = IMAGE_QOS if "/camera/" in topic else STATE_QOS
            self.create_subscription(
                get_message(msgtype),
                topic,
                lambda raw, t=topic, m=msgtype: self._on_raw(t, m, raw),
                qos,
                raw=True,
            )
        refuse_runtime_changes(self)
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
