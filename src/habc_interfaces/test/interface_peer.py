"""Peer process for the cross-process interface test.

Publishes one sample of every habc_interfaces message on its own topic (reliable,
transient-local, so a late subscriber still gets it) and serves both services, until killed.
Run by test_cross_process.py as a separate OS process.
"""

from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from habc_interfaces.msg import ActionChunk, ArmCommand, ControlAuthority, EpisodeEvent
from habc_interfaces.srv import EndEpisode, StartEpisode

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def sample_messages() -> dict[str, object]:
    """One filled-in sample per message type, keyed by topic name."""
    authority = ControlAuthority()
    authority.arm_names = ["left", "right"]
    authority.authority = [ControlAuthority.HUMAN, ControlAuthority.POLICY]
    authority.source = "pedal"

    command = ArmCommand()
    command.mode = ArmCommand.MODE_EE
    command.targets = [0.3, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    command.gripper = 0.044
    command.authority = ControlAuthority.POLICY
    command.model_index = 6000

    chunk = ActionChunk()
    chunk.chunk_id = 7
    chunk.model_index = 6000
    chunk.horizon = 2
    chunk.action_dim = 3
    chunk.execute_steps = 1
    chunk.dim_names = ["x", "y", "z"]
    chunk.actions = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]

    event = EpisodeEvent()
    event.event = EpisodeEvent.END
    event.episode_id = "ep_000042"
    event.task = "put the marker in the pouch"
    event.source = "rollout"
    event.outcome = "success"
    event.round = 3
    event.model_index = 6000
    return {
        "/xproc/authority": authority,
        "/xproc/command": command,
        "/xproc/chunk": chunk,
        "/xproc/event": event,
    }


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("habc_interfaces_peer")
    publishers = []
    for topic, msg in sample_messages().items():
        pub = node.create_publisher(type(msg), topic, LATCHED)
        pub.publish(msg)
        publishers.append(pub)

    def start(request: StartEpisode.Request, response: StartEpisode.Response):
        response.accepted = True
        response.episode_id = f"{request.source}_{request.round:03d}"
        response.message = request.task
        return response

    def end(request: EndEpisode.Request, response: EndEpisode.Response):
        response.accepted = request.outcome in ("success", "failure", "unknown")
        response.episode_id = request.episode_id
        response.message = request.outcome
        return response

    node.create_service(StartEpisode, "/xproc/start_episode", start)
    node.create_service(EndEpisode, "/xproc/end_episode", end)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
