"""Command mux node: /policy/<arm>/command, /teleop/<arm>/command -> /<arm>_arm/command_request.

Ticks on each /<arm>_arm/joint_states message (the arm driver's control clock), so every state
tick yields exactly one request per arm, labelled with the authority in force. The arm driver
puts it through its safety core and publishes what it executed on /<arm>_arm/command (the
recorded action; the request is recorded beside it). A policy that sends nothing for
`policy_timeout_s` is stalled: its last target is then requested as HOLD, never as POLICY.
Each episode START forgets the last outputs (the next episode starts from the measured pose).
Logic: habc_control.command_mux. On shutdown a HOLD request is published for every arm.
"""

from __future__ import annotations

import threading
from collections import deque

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time

from arx_x5_driver.loop_stats import LatencySamples
from arx_x5_driver.node_main import run_node
from arx_x5_driver.qos import AUTHORITY_QOS, COMMAND_QOS, EVENTS_QOS, POLICY_ROW_QOS
from arx_x5_driver.ros_params import ACTION_SPACE, ARMS, CONTROL_HZ, ParamSpec, declare_params
from habc_control.arm_state import ArmStates
from habc_control.authority import AUTHORITY_TIMEOUT_S, Authority, AuthorityWatch
from habc_control.command_mux import (
    POLICY_TIMEOUT_S,
    CommandMux,
    MuxConfig,
    policy_timeout_ticks,
)
from habc_control.ros_common import (
    arm_command_msg,
    authority_from_msg,
    follow_ee_poses,
    follow_joint_states,
    subscribe_arms,
    target_from_command,
)
from habc_core.contract import (
    AUTHORITY_TOPIC,
    EPISODE_EVENTS_TOPIC,
    EVENT_START,
    MODE_BY_SPACE,
    command_request_topic,
    policy_command_topic,
    ros_name,
    teleop_command_topic,
)
from habc_interfaces.msg import ArmCommand, ControlAuthority, EpisodeEvent

# Read once: the blend and the timeouts shape what reaches the arms; a change while a takeover
# runs would be unsafe.
PARAMS = {
    "arms": ARMS,
    "action_space": ACTION_SPACE,
    "control_hz": CONTROL_HZ,
    "blend_steps": ParamSpec(
        MuxConfig.blend_steps, "ticks of blending after a switch to HUMAN", bounds=(0, 300)
    ),
    "authority_timeout_s": ParamSpec(
        AUTHORITY_TIMEOUT_S,
        "no /control_authority this long -> every arm HOLD",
        bounds=(0.1, AUTHORITY_TIMEOUT_S),
    ),
    "policy_timeout_s": ParamSpec(
        POLICY_TIMEOUT_S,
        "no policy command this long under POLICY -> the arm is held, labelled HOLD",
        bounds=(0.01, POLICY_TIMEOUT_S),
    ),
}


class MuxNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("command_mux", **kwargs)
        p = declare_params(self, PARAMS)
        self.arms = tuple(p["arms"])
        self.space = p["action_space"]
        blend, timeout, hz = p["blend_steps"], p["authority_timeout_s"], float(p["control_hz"])
        policy_timeout = p["policy_timeout_s"]
        ticks = policy_timeout_ticks(float(policy_timeout), hz)
        self.mux = CommandMux(MuxConfig(self.arms, self.space, blend, ticks))
        self.mode = MODE_BY_SPACE[self.space]
        # HOLD until the teleop node speaks, and again if its heartbeat stops.
        self.watch = AuthorityWatch(self.arms, timeout)
        self._stale_reported = False
        self._stalled_reported = dict.fromkeys(self.arms, False)
        # The policy node ticks on the same state messages; its command for a tick may land just
        # before or just after ours. A short FIFO uses each row exactly once either way.
        self._policy = {a: deque(maxlen=POLICY_ROW_QOS.depth) for a in self.arms}
        self._human: dict = dict.fromkeys(self.arms)
        self.states = ArmStates(self.arms)
        self._lock = threading.Lock()
        self._pub = {
            a: self.create_publisher(ArmCommand, ros_name(command_request_topic(a)), COMMAND_QOS)
            for a in self.arms
        }
        self.create_subscription(
            ControlAuthority, ros_name(AUTHORITY_TOPIC), self._on_authority, AUTHORITY_QOS
        )
        self.create_subscription(
            EpisodeEvent, ros_name(EPISODE_EVENTS_TOPIC), self._on_event, EVENTS_QOS
        )
        subscribe_arms(
            self, ArmCommand, policy_command_topic, self.arms, self._on_policy, POLICY_ROW_QOS
        )
        subscribe_arms(
            self, ArmCommand, teleop_command_topic, self.arms, self._on_human, COMMAND_QOS
        )
        follow_ee_poses(self, self.states, self._lock)
        follow_joint_states(self, self.states, self._lock, then=self._on_tick)  # the tick
        self.published = 0
        self.row_age = LatencySamples("observation -> mux request")

    def _on_authority(self, msg: ControlAuthority) -> None:
        with self._lock:
            self.watch.update(authority_from_msg(msg), self._now())

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EVENT_START:
            with self._lock:
                self.mux.reset()
                for queue in self._policy.values():
                    queue.clear()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_policy(self, arm: str, msg: ArmCommand) -> None:
        with self._lock:
            stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
            self._policy[arm].append((target_from_command(msg), int(msg.model_index), stamp_ns))

    def _on_human(self, arm: str, msg: ArmCommand) -> None:
        with self._lock:
            self._human[arm] = target_from_command(msg)

    def _on_tick(self, arm: str) -> None:
        with self._lock:
            measured = self.states.target(arm, self.space)
            now = self._now()
            authority = self.watch.current(now)
            stale = self.watch.heard and self.watch.stale(now)  # lost, not "not yet heard"
            policy, index, observed_ns = (
                self._policy[arm].popleft() if self._policy[arm] else (None, -1, None)
            )
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
        stalled = authority[arm] == Authority.POLICY and self.mux.policy_stalled(arm)
        if stalled and not self._stalled_reported[arm]:
            self.get_logger().error(
                f"{arm}: no policy command for {self.mux.config.policy_timeout_ticks} ticks "
                "(policy stalled or gone): holding the arm"
            )
        elif not stalled and self._stalled_reported[arm]:
            self.get_logger().info(f"{arm}: policy commands again")
        self._stalled_reported[arm] = stalled
        if out is not None:
            msg = arm_command_msg(self, out.target, self.mode, out.authority, out.model_index)
            self._pub[arm].publish(msg)
            if out.authority == Authority.POLICY and policy is not None and not out.held:
                # A policy row carries its observation's stamp: the first leg of the graph's
                # observation -> command latency (the driver measures the second).
                sent_ns = Time.from_msg(msg.header.stamp).nanoseconds
                self.row_age.add((sent_ns - observed_ns) * 1e-9)
            self.published += 1

    def publish_hold(self) -> None:
        self.get_logger().info(f"policy rows: {self.row_age.summary()}")
        for arm in self.arms:
            last = self.mux.last_output(arm)
            if last is not None:
                self._pub[arm].publish(arm_command_msg(self, last, self.mode, Authority.HOLD, -1))
        for pub in self._pub.values():  # delivered before the writers go away
            pub.wait_for_all_acked(Duration(seconds=0.5))


def main(args=None) -> None:
    run_node(MuxNode, args)


NODE = MuxNode
