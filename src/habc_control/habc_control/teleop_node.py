"""Teleop node: who commands each arm (/control_authority) and what the human commands.

Input (`input`): `pedal` (evdev foot switch), `keyboard` (terminal keys, toggle style) or
`sim_operator` (scripted takeover windows relative to each episode START). /control_authority
is published reliable + transient-local on every change and every `heartbeat_s`.

Human commands (`human_source`), published on /teleop/<arm>/command at `control_hz`:
`leader` reads leader arms through the ARX SDK (`leader_can_interfaces`), `topic` relays
ArmCommands from /teleop/source/<arm> (e.g. the sim rig's scripted expert), `measured` keeps the
arm where it is (a stand-in when no leader exists).
On shutdown every arm is published as HOLD.
"""

from __future__ import annotations

import select
import sys
import termios
import threading
import tty

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node

from arx_x5_driver.node_main import run_node
from arx_x5_driver.qos import AUTHORITY_QOS, COMMAND_QOS, EVENTS_QOS
from arx_x5_driver.ros_params import ACTION_SPACE, ARMS, CONTROL_HZ, ParamSpec, declare_params
from habc_control.arm_state import ArmStates
from habc_control.authority import INPUT_MODES, AuthorityArbiter, AuthorityConfig
from habc_control.keyboard import HELP, KeyboardCommands
from habc_control.pedal import PedalConfig, PedalReader
from habc_control.ros_common import (
    arm_command_msg,
    authority_msg,
    entries,
    exit_on_bad_parameter,
    follow_ee_poses,
    follow_joint_states,
    subscribe_arms,
    target_from_command,
)
from habc_control.teleop import PedalSupervisor, ScheduledOperator, parse_schedule
from habc_core.contract import (
    AUTHORITY_TOPIC,
    EPISODE_EVENTS_TOPIC,
    EVENT_END,
    EVENT_START,
    MODE_BY_SPACE,
    ros_name,
    teleop_command_topic,
    teleop_source_topic,
)
from habc_interfaces.msg import ArmCommand, ControlAuthority, EpisodeEvent

INPUTS = ("pedal", "keyboard", "sim_operator")
HUMAN_SOURCES = ("topic", "leader", "measured")


def pedal_key_map(keys: tuple[str, ...]) -> dict[str, str]:
    """`pedal_keys` entries `arm:KEY_NAME` (or `both:KEY_NAME`) -> {arm: key}."""
    pairs = {}
    for item in keys:
        arm, sep, key = item.partition(":")
        if not sep or not arm or not key:
            raise ValueError(f"pedal_keys: {item!r} is not 'arm:KEY_NAME' (e.g. both:KEY_B)")
        pairs[arm] = key
    return pairs


# Read once: who may command the arms is decided at startup, never changed under a takeover.
PARAMS = {
    "arms": ARMS,
    "input": ParamSpec("keyboard", "takeover input", choices=INPUTS),
    "mode": ParamSpec("hold", "pedal: hold (pressed = HUMAN) or toggle", choices=INPUT_MODES),
    "control_hz": CONTROL_HZ,
    "action_space": ACTION_SPACE,
    "human_source": ParamSpec("measured", "what the human commands", choices=HUMAN_SOURCES),
    "debounce_s": ParamSpec(
        AuthorityConfig.debounce_s, "switch level must be stable this long", bounds=(0.0, 0.5)
    ),
    "heartbeat_s": ParamSpec(
        AuthorityConfig.heartbeat_s, "/control_authority re-publish period", bounds=(0.05, 1.0)
    ),
    "pedal_device": ParamSpec("", "pedal: /dev/input path or by-id name"),
    "pedal_keys": ParamSpec(["both:KEY_B"], "pedal: arm:KEY_NAME entries"),
    "sim_schedule": ParamSpec([""], "sim_operator: arm:start_s:end_s entries"),
    "leader_can_interfaces": ParamSpec(["can2", "can3"], "leader: CAN interface per arm"),
}


class TeleopNode(Node):
    def __init__(self, open_device=None, **kwargs) -> None:
        """`open_device`: path -> evdev-like device (tests pass a fake; default evdev)."""
        super().__init__("teleop", **kwargs)
        p = declare_params(self, PARAMS)
        self.arms = entries(p["arms"])
        self.input, mode, self.space = p["input"], p["mode"], p["action_space"]
        hz = float(p["control_hz"])
        self.human_source = p["human_source"]
        debounce, heartbeat = p["debounce_s"], p["heartbeat_s"]
        device, keys, schedule = p["pedal_device"], p["pedal_keys"], p["sim_schedule"]
        leader_ifaces = p["leader_can_interfaces"]
        if not self.arms:
            raise ValueError("arms: empty; name at least one arm (e.g. [left, right])")
        keys, schedule = entries(keys), entries(schedule)
        leader_ifaces = entries(leader_ifaces)
        if self.input == "pedal" and not device:
            raise ValueError(
                "pedal_device: '' with input=pedal; set it to the foot switch's name from "
                "`ls /dev/input/by-id/` (usually ending in -event-kbd) or a /dev/input/eventN path"
            )
        if self.input == "keyboard":
            mode = "toggle"  # a terminal reports presses, never releases
        self.arbiter = AuthorityArbiter(
            AuthorityConfig(self.arms, mode, debounce if self.input == "pedal" else 0.0, heartbeat)
        )
        self._lock = threading.Lock()
        self._pub = self.create_publisher(
            ControlAuthority, ros_name(AUTHORITY_TOPIC), AUTHORITY_QOS
        )
        self._cmd_pub = {
            a: self.create_publisher(ArmCommand, ros_name(teleop_command_topic(a)), COMMAND_QOS)
            for a in self.arms
        }
        self._human = dict.fromkeys(self.arms)
        self.states = ArmStates(self.arms)
        subscribe_arms(
            self, ArmCommand, teleop_source_topic, self.arms, self._on_source, COMMAND_QOS
        )
        follow_joint_states(self, self.states, self._lock)
        follow_ee_poses(self, self.states, self._lock)
        self._leader = None
        if self.human_source == "leader":
            from habc_control.leader import LeaderArms, LeaderConfig  # optional: the ARX SDK

            if len(leader_ifaces) != len(self.arms):
                raise ValueError(
                    f"leader_can_interfaces: {list(leader_ifaces)} needs one per arm of "
                    f"{list(self.arms)}"
                )
            ifaces = dict(zip(self.arms, leader_ifaces, strict=True))
            self._leader = LeaderArms(LeaderConfig(ifaces, self.space))
        self._tty_saved = None
        self._pedal = self._keyboard = self._operator = None
        if self.input == "pedal":
            pcfg = PedalConfig(device=device, keys=pedal_key_map(keys), arms=self.arms)
            reader = PedalReader(pcfg) if open_device is None else PedalReader(pcfg, open_device)
            self._pedal = PedalSupervisor(reader, self.arbiter)
        elif self.input == "keyboard":
            self._keyboard = KeyboardCommands(self.arbiter)
            self._kb_thread = threading.Thread(target=self._keyboard_loop, daemon=True)
            self._kb_thread.start()
        else:
            # An empty schedule: the simulated operator never presses the pedal.
            self._operator = ScheduledOperator(parse_schedule(schedule), self.arms)
            self.create_subscription(
                EpisodeEvent, ros_name(EPISODE_EVENTS_TOPIC), self._on_event, EVENTS_QOS
            )
        self.create_timer(0.01, self._poll)  # 100 Hz input polling, debounce resolution
        self.create_timer(1.0 / hz, self._publish_human)
        self._publish_authority()

    # --- inputs ---
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _poll(self) -> None:
        now = self._now()
        with self._lock:
            if self._pedal is not None:
                r = self._pedal.tick(now)
                if r.error:
                    self.get_logger().error(r.error)
                if r.info:
                    self.get_logger().info(r.info)
                changes = r.changes
            elif self._operator is not None:
                changes = self.arbiter.update(self._operator.levels(now), now, "sim_operator")
            else:
                changes = []
        if changes or self.arbiter.heartbeat_due(now):
            for c in changes:
                self.get_logger().info(
                    f"{c.arm}: {c.previous.name} -> {c.current.name} ({c.source})"
                )
            self._publish_authority()

    def _keyboard_loop(self) -> None:
        if not sys.stdin.isatty():
            self.get_logger().error("keyboard input needs a terminal on stdin; none: no keys")
            return
        self.get_logger().info(HELP)
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        self._tty_saved = (fd, saved)  # close() restores it if this daemon thread is cut off
        try:
            tty.setcbreak(fd)
            while rclpy.ok() and not self._keyboard.quit_requested:
                ready, _, _ = select.select([sys.stdin], [], [], 0.1)
                if ready:
                    ch = sys.stdin.read(1)
                    with self._lock:
                        changes = self._keyboard.handle(ch, self._now())
                    if changes:
                        self._publish_authority()
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EVENT_START:
            self._operator.episode_start = self._now()
        elif msg.event == EVENT_END:
            self._operator.episode_start = None

    def _on_source(self, arm: str, msg: ArmCommand) -> None:
        self._human[arm] = target_from_command(msg)

    # --- outputs ---
    def _publish_authority(self) -> None:
        snap = self.arbiter.snapshot()
        self._pub.publish(authority_msg(self, snap, self.arbiter.source))
        self.arbiter.mark_published(self._now())

    def _publish_human(self) -> None:
        for arm in self.arms:
            if self._leader is not None:
                target = self._leader.read(arm)
            elif self.human_source == "topic":
                target = self._human[arm]
            else:
                target = self.states.target(arm, self.space)
            if target is not None:
                snap = self.arbiter.authority(arm)
                self._cmd_pub[arm].publish(
                    arm_command_msg(self, target, MODE_BY_SPACE[self.space], snap, -1)
                )

    def publish_hold(self) -> None:
        """Fail safe: every arm HOLD, so the mux and the driver stop taking commands."""
        now = self._now()
        with self._lock:
            self.arbiter.hold_all(now, self.input, "teleop node shutting down")
        self._publish_authority()
        # Reliable delivery needs the writer alive until the readers acknowledged.
        self._pub.wait_for_all_acked(Duration(seconds=0.5))

    def close(self) -> None:
        if self._tty_saved is not None:
            fd, saved = self._tty_saved
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)  # the operator's shell echoes again
            self._tty_saved = None
        if self._leader is not None:
            self._leader.close()


def main(args=None) -> None:
    run_node(exit_on_bad_parameter(TeleopNode, "teleop"), args)


NODE = TeleopNode
