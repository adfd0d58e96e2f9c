"""Episode manager node: StartEpisode / EndEpisode services -> /episode/events.

/episode/start (StartEpisode) and /episode/end (EndEpisode; with the id of a finished episode it
relabels it). Every accepted call is published on /episode/events (START / END / RELABEL); the
recorder turns those into bags. A START is refused until the recorder itself listens on
/episode/events, matched to this node's publisher (`require_recorder`; the node named
`recorder_node`): the mux, the policy, the teleop and the driver subscribe to the events too,
and on a graph of many processes they are often discovered first, so "someone listens" let an
episode start unrecorded (the events are not latched: a START the recorder missed is lost).
Logic: habc_control.episode_manager.
"""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSCompatibility, qos_check_compatible

from arx_x5_driver.node_main import run_node
from arx_x5_driver.qos import AUTHORITY_QOS, CHUNK_QOS, EVENTS_QOS
from arx_x5_driver.ros_params import CONTROL_HZ, ParamSpec, declare_params
from habc_control.episode_manager import EpisodeManager, EpisodeManagerConfig
from habc_control.ros_common import authority_from_msg, now_ns
from habc_core.contract import (
    ACTION_CHUNK_TOPIC,
    AUTHORITY_TOPIC,
    END_EPISODE_SERVICE,
    EPISODE_EVENTS_TOPIC,
    START_EPISODE_SERVICE,
    ros_name,
)
from habc_interfaces.msg import ActionChunk, ControlAuthority, EpisodeEvent
from habc_interfaces.srv import EndEpisode, StartEpisode

PARAMS = {
    "robot": ParamSpec("arx_x5_bimanual", "robot name in the sidecar"),
    "control_hz": CONTROL_HZ,
    "t_max_steps": ParamSpec(900, "episode step budget T_max", bounds=(1, 10_000_000)),
    "require_recorder": ParamSpec(True, "refuse START while the recorder is not subscribed"),
    "recorder_node": ParamSpec("recorder", "the recorder's node name (require_recorder)"),
}


class EpisodeManagerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("episode_manager", **kwargs)
        p = declare_params(self, PARAMS)
        cfg = EpisodeManagerConfig(
            robot=p["robot"], control_hz=float(p["control_hz"]), t_max_steps=p["t_max_steps"]
        )
        self.require_recorder = p["require_recorder"]
        self.recorder_node = p["recorder_node"]
        self.manager = EpisodeManager(cfg)
        self._events = self.create_publisher(
            EpisodeEvent, ros_name(EPISODE_EVENTS_TOPIC), EVENTS_QOS
        )
        self.create_service(StartEpisode, ros_name(START_EPISODE_SERVICE), self._on_start)
        self.create_service(EndEpisode, ros_name(END_EPISODE_SERVICE), self._on_end)
        self.create_subscription(
            ControlAuthority, ros_name(AUTHORITY_TOPIC), self._on_authority, AUTHORITY_QOS
        )
        self.create_subscription(
            ActionChunk, ros_name(ACTION_CHUNK_TOPIC), self._on_chunk, CHUNK_QOS
        )

    def recorder_listens(self) -> bool:
        """The recorder's subscription is discovered, and this publisher is matched to every
        discovered subscription it can match (the graph's list and the matching are separate
        steps; a tool subscribed with a QoS the events cannot serve never matches)."""
        topic = self._events.topic_name
        # Our publisher as discovery describes it: a local profile's unset deadline reads as
        # set next to a discovered subscription's "infinite" one.
        ours = [
            info
            for info in self.get_publishers_info_by_topic(topic)
            if info.node_name == self.get_name() and info.node_namespace == self.get_namespace()
        ]
        if not ours:
            return False
        subs = [
            info
            for info in self.get_subscriptions_info_by_topic(topic)
            if qos_check_compatible(ours[0].qos_profile, info.qos_profile)[0]
            != QoSCompatibility.ERROR
        ]
        listed = any(info.node_name == self.recorder_node for info in subs)
        return listed and self._events.get_subscription_count() >= len(subs)

    def _on_authority(self, msg: ControlAuthority) -> None:
        self.manager.note_authority(authority_from_msg(msg))

    def _on_chunk(self, msg: ActionChunk) -> None:
        self.manager.note_model_index(int(msg.model_index))

    def _publish(self, event: int, meta, outcome: str = "") -> None:
        msg = EpisodeEvent()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.event = event
        msg.episode_id = meta.episode_id
        msg.task = meta.task
        msg.source = meta.source
        msg.outcome = outcome
        msg.round = int(meta.round)
        msg.model_index = int(meta.model_index)
        self._events.publish(msg)

    def _on_start(self, req: StartEpisode.Request, res: StartEpisode.Response):
        if self.require_recorder and not self.recorder_listens():
            res.accepted = False
            res.message = f"the {self.recorder_node!r} node is not subscribed to the events yet"
            return res
        r = self.manager.start(req.task, req.source, int(req.round), now_ns(self))
        res.accepted, res.episode_id, res.message = r.accepted, r.episode_id, r.message
        if r.accepted:
            self._publish(EpisodeEvent.START, r.meta)
            self.get_logger().info(f"START {r.episode_id}: {req.task!r} ({req.source})")
        else:
            self.get_logger().warning(f"StartEpisode refused: {r.message}")
        return res

    def _on_end(self, req: EndEpisode.Request, res: EndEpisode.Response):
        running = self.manager.episode_id
        r = self.manager.end(req.outcome, now_ns(self), req.episode_id)
        res.accepted, res.episode_id, res.message = r.accepted, r.episode_id, r.message
        if r.accepted:
            relabel = not running or (req.episode_id and req.episode_id != running)
            event = EpisodeEvent.RELABEL if relabel else EpisodeEvent.END
            self._publish(event, r.meta, r.meta.outcome)
            self.get_logger().info(
                f"{'RELABEL' if relabel else 'END'} {r.episode_id}: {r.meta.outcome}"
            )
        else:
            self.get_logger().warning(f"EndEpisode refused: {r.message}")
        return res

    def end_running(self) -> None:
        """On shutdown: close a running episode as `unknown` so its bag gets a sidecar."""
        if self.manager.active:
            r = self.manager.end("unknown", now_ns(self))
            self._publish(EpisodeEvent.END, r.meta, "unknown")
            self._events.wait_for_all_acked(Duration(seconds=1.0))


def main(args=None) -> None:
    run_node(EpisodeManagerNode, args)


NODE = EpisodeManagerNode
