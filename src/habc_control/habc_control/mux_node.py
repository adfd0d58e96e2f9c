"""Command mux node: /policy/<arm>/command, /teleop/<arm>/command -> /<arm>_arm/command.

Ticks on each /<arm>_arm/joint_states message (the arm driver's control clock), so every state
tick yields exactly one executed command per arm, labelled with the authority in force. What it
publishes is what the recorder stores as the action. Logic: habc_control.command_mux.
On shutdown a HOLD command is published for every arm.
"""

from __future__ import annotations

import threading
from collections import deque

from geometry_msgs.msg import PoseStamped
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import JointState

from arx_x5_driver.node_main import run_node
from habc_control.authority import Authority, AuthorityWatch
from habc_control.command_mux import CommandMux, MuxConfig
from habc_control.ros_common import (
    AUTHORITY_QOS,
    COMMAND_QOS,
    MODE_BY_SPACE,
    STATE_QOS,
    arm_command_msg,
    authority_from_msg,
    declare,
    pose_to_ee9,
    refuse_runtime_changes,
    target_from_command,
    target_from_state,
)
from habc_interfaces.msg import ArmCommand, ControlAuthority


class MuxNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("command_mux", **kwargs)
        self.arms = tuple(declare(self, "arms", ["left", "right"], "arm names"))
        self.space = declare(self, "action_space", "ee", "ee or joint")
        blend = declare(self, "blend_steps", 15, "ticks of blending after a switch to HUMAN")
        timeout = declare(
            self, "authority_timeout_s", 2.0, "no /control_authority this long -> every arm HOLD"
        )
        self.mux = CommandMux(MuxConfig(self.arms, self.space, blend))
        self.mode = MODE_BY_SPACE[self.space]
        # HOLD until the teleop node speaks, and again if its heartbeat stops.
        self.watch = AuthorityWatch(self.arms, timeout)
        self._stale_reported = False
        # The policy node ticks on the same state messages; its command for a tick may land just
        # before or just after ours. A short FIFO uses each row exactly once either way.
        self._policy = {a: deque(maxlen=3) for a in self.arms}
        self._human: dict = dict.fromkeys(self.arms)
        self._joints: dict = dict.fromkeys(self.arms)
        self._ee: dict = dict.fromkeys(self.arms)
        self._gripper = dict.fromkeys(self.arms, 0.0)
        self._lock = threading.Lock()
        self._pub = {
            a: self.create_publisher(ArmCommand, f"/{a}_arm/command", COMMAND_QOS)
            for a in self.arms
        }
        self.create_subscription(
            ControlAuthority, "/control_authority", self._on_authority, AUTHORITY_QOS
        )
        for a in self.arms:
            self.create_subscription(
                ArmCommand,
                f"/policy/{a}/command",
                lambda m, a=a: self._on_policy(a, m),
                COMMAND_QOS,
            )
            self.create_subscription(
                ArmCommand,
                f"/teleop/{a}/command",
                lambda m, a=a: self._on_human(a, m),
                COMMAND_QOS,
            )
            self.create_subscription(
                PoseStamped, f"/{a}_arm/ee_pose", lambda m, a=a: self._on_pose(a, m), STATE_QOS
            )
            self.create_subscription(
                JointState,
                f"/{a}_arm/joint_states",
                lambda m, a=a: self._on_tick(a, m),
                STATE_QOS,
            )
        self.published = 0
        refuse_runtime_changes(self)

    def _on_authority(self, msg: ControlAuthority) -> None:
        with self._lock:
            self.watch.update(authority_from_msg(msg), self._now())

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_policy(self, arm: str, msg: ArmCommand) -> None:
        with self._lock:
            self._policy[arm].append((target_from_command(msg), int(msg.model_index)))

    def _on_human(self, arm: str, msg: ArmCommand) -> None:
        with self._lock:
            self._human[arm] = target_from_command(msg)

    def _on_pose(self, arm: str, msg: PoseStamped) -> None:
        with self._lock:
            self._ee[arm] = pose_to_ee9(msg.pose.position, msg.pose.orientation)

    def _on_tick(self, arm: str, msg: JointState) -> None:
        with self._lock:
            self._joints[arm] = list(msg.position[:6])
            if len(msg.position) > 6:
                self._gripper[arm] = float(msg.position[6])
            measured = target_from_state(
                self._joints[arm], self._ee[arm], self._gripper[arm], self.space
            )
            now = self._now()
            authority = self.watch.current(now)
            stale = self.watch.heard and self.watch.stale(now)  # lost, not "not yet heard"
            policy, index = self._policy[arm].popleft() if self._policy[arm] else (None, -1)
            if authority[arm] != Authority.POLICY:
                self._policy[arm].clear()  # rows queued before a takeover are stale
            out = self.mux.tick(
                {arm: authority[arm]},
                {arm: policy},
                {arm: self._human[arm]},
                {arm: measured},
                model_index=index,
                arms=(arm,),
            )[arm]
        if stale and not self._stale_reported:
            self.get_logger().error(
                f"no /control_authority for {self.watch.timeout_s} s (teleop node gone?): "
                "every arm HOLD"
            )
        self._stale_reported = stale
        if out is not None:
            self._pub[arm].publish(
                arm_command_msg(self, out.target, self.mode, out.authority, out.model_index)
            )
            self.published += 1

    def publish_hold(self) -> None:
        for arm in self.arms:
            last = self.mux.last_output(arm)
            if last is not None:
                self._pub[arm].publish(arm_command_msg(self, last, self.mode, Authority.HOLD, -1))
        for pub in self._pub.values():  # delivered before the writers go away
            pub.wait_for_all_acked(Duration(seconds=0.5))


def main(args=None) -> None:
    run_node(MuxNode, args)


NODE = MuxNode
