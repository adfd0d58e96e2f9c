"""Arm driver node: one node for the rig's arms, backend `kinematic`, `sim` or `arx5`.

Per control tick: read every arm, publish /<arm>_arm/joint_states and /<arm>_arm/ee_pose (the
graph's control clock), then send the newest /<arm>_arm/command_request through the safety core
(limits, step clamp, watchdog, HOLD) and publish what was sent on /<arm>_arm/command: the
executed command, with the safety bits that shaped it. That is the recorded action.
/control_authority HOLD for an arm holds it whatever the requests say. On shutdown every arm
goes to the backend's safe state (damping on the real X5).

Sim backend only: /sim/reset (ResetSim) puts the rig in a new seeded layout (the arms home, the
safety core forgets its last targets, requests stamped before the reset are ignored), and
/sim/task_status reports the task's own judgement every tick.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from arx_x5_driver.backend import KinematicRigBackend, RigBackend
from arx_x5_driver.driver_core import DriverCore
from arx_x5_driver.node_main import run_node
from arx_x5_driver.safety import AUTHORITY_HOLD, Command, SafetyConfig
from habc_core.contract import (
    AUTHORITY_TOPIC,
    ENV_STATE_TOPIC,
    EPISODE_EVENTS_TOPIC,
    EVENT_START,
    MODE_BY_SPACE,
    SIM_RESET_SERVICE,
    SIM_TASK_STATUS_TOPIC,
    base_frame,
    camera_frame,
    command_request_topic,
    command_topic,
    ee_pose_topic,
    image_topic,
    joint_names,
    joint_states_topic,
    teleop_source_topic,
)
from habc_core.features import CAMERA_NAMES
from habc_core.rotations import quat_from_ee9
from habc_interfaces.msg import ArmCommand, ControlAuthority, EpisodeEvent, SimTaskStatus
from habc_interfaces.srv import ResetSim

BACKENDS = ("kinematic", "sim", "arx5")
_AUTHORITY_QOS = QoSProfile(
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def make_backend(node: Node, name: str, arms: tuple[str, ...], mode: int) -> RigBackend:
    """Build the configured backend; errors name what is missing."""
    if name == "kinematic":
        return KinematicRigBackend(arms)
    if name == "arx5":
        # optional: the ARX SDK (arx5_interface), needed by backend arx5 only
        from arx_x5_driver.real_backend import RealBackendConfig, RealRigBackend

        ifaces = list(node.get_parameter("can_interfaces").value)
        if len(ifaces) != len(arms):
            raise ValueError(f"can_interfaces: need one per arm {arms}, got {ifaces}")
        return RealRigBackend(RealBackendConfig(dict(zip(arms, ifaces, strict=True)), mode))
    if name == "sim":
        # The MuJoCo rig (package habc_sim); imported only here: a robot PC has neither it nor
        # MuJoCo.
        try:
            from arx_x5_driver.sim_backend import SimRigBackend
        except ModuleNotFoundError as exc:
            if exc.name not in ("habc_sim", "mujoco"):
                raise
            raise ValueError(
                f"backend: 'sim' needs the simulated rig ({exc.name} is not installed; "
                "it is src/habc_sim in the workspace, never installed on a robot PC)"
            ) from None

        # Without published cameras the rig need not render at all (rendering dominates a tick).
        cameras = int(node.get_parameter("camera_every").value) > 0
        return SimRigBackend(
            arms,
            mode,
            node.get_parameter("sim_config").value or None,
            obs_mode="pixels" if cameras else "state",
        )
    raise ValueError(f"backend: {name!r} is not one of {BACKENDS}")


class ArmNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("arm_driver", **kwargs)

        def p(name, default, text):
            return self.declare_parameter(name, default, ParameterDescriptor(description=text))

        self.arms = tuple(p("arms", ["left", "right"], "arm names").value)
        backend = p("backend", "kinematic", f"one of {BACKENDS}").value
        self.hz = float(p("control_hz", 30.0, "control rate [Hz]; also the state rate").value)
        space = p("action_space", "ee", "ee (xyz + 6-D rot) or joint: the command mode").value
        p("can_interfaces", ["can0", "can1"], "arx5 backend: CAN interface per arm, in order")
        p("sim_config", "", "sim backend: sim YAML (empty: the sim's defaults)")
        self.camera_every = int(
            p("camera_every", 1, "sim: publish camera images every N ticks (0: never)").value
        )
        publish_expert = p(
            "publish_expert", False, "sim: the scripted expert's targets on /teleop/source/<arm>"
        ).value
        cfg = SafetyConfig.from_parameters(
            {
                name: p(name, default, text).value
                for name, (default, text) in SafetyConfig.parameters().items()
            }
        )
        if space not in MODE_BY_SPACE:
            choices = tuple(MODE_BY_SPACE)
            raise ValueError(f"action_space: expected one of {choices}, got {space!r}")
        self.mode = MODE_BY_SPACE[space]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._go = threading.Event()
        self._t_start = time.monotonic()
        self._busy = self._worst = 0.0
        self._error: BaseException | None = None
        # The control loop owns the backend in its own thread: the sim's OpenGL context is bound
        # to the thread that made it, and a plain rate loop keeps the tick independent of how
        # busy the executor is.
        self._thread = threading.Thread(
            target=self._run, args=(backend,), name="arm_control", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        try:
            self._setup_io(cfg, publish_expert)
        except BaseException:
            self._stop.set()  # the loop thread puts the backend in its safe state and exits
            self._thread.join(timeout=10.0)
            raise
        self.add_on_set_parameters_callback(self._refuse_changes)
        self._go.set()  # publishers exist: the loop may tick
        self.get_logger().info(f"arms {self.arms} on backend {backend!r} at {self.hz} Hz")

    def _refuse_changes(self, params) -> SetParametersResult:
        # Limits and rates are read once into the safety core; a silent no-op would mislead.
        names = ", ".join(p.name for p in params)
        return SetParametersResult(successful=False, reason=f"{names}: restart the arm driver")

    def _setup_io(self, cfg: SafetyConfig, publish_expert: bool) -> None:
        self.core = DriverCore(self.backend, cfg, self.mode)
        # After a sim reset the mux and the policy still hold targets of the old layout until they
        # see the episode's START: requests are ignored until START, then those stamped before it.
        self._awaiting_start = False
        self._ignore_before_ns = 0
        self._js_pub = {
            a: self.create_publisher(JointState, joint_states_topic(a), 10) for a in self.arms
        }
        self._pose_pub = {
            a: self.create_publisher(PoseStamped, ee_pose_topic(a), 10) for a in self.arms
        }
        self._cmd_pub = {
            a: self.create_publisher(ArmCommand, command_topic(a), 10) for a in self.arms
        }
        for a in self.arms:
            self.create_subscription(
                ArmCommand, command_request_topic(a), lambda m, a=a: self._on_command(a, m), 10
            )
        self.create_subscription(
            ControlAuthority, AUTHORITY_TOPIC, self._on_authority, _AUTHORITY_QOS
        )
        self._cam_pub = {}
        if self.camera_every > 0 and hasattr(self.backend, "render"):
            for cam in CAMERA_NAMES:
                self._cam_pub[cam] = self.create_publisher(Image, image_topic(cam), 2)
        self._env_state_pub = self._status_pub = None
        self._reset_request: tuple[int, threading.Event, list[str]] | None = None
        self._seed = -1
        if hasattr(self.backend, "env_state"):  # sim only: privileged state, state-mode policies
            self._env_state_pub = self.create_publisher(Float64MultiArray, ENV_STATE_TOPIC, 10)
            self._status_pub = self.create_publisher(SimTaskStatus, SIM_TASK_STATUS_TOPIC, 10)
            self.create_service(ResetSim, SIM_RESET_SERVICE, self._on_reset)
            events_qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
            self.create_subscription(
                EpisodeEvent, EPISODE_EVENTS_TOPIC, self._on_event, events_qos
            )
        self._publish_expert = publish_expert and hasattr(self.backend, "env")
        self._expert = self._make_expert(0)
        if self._publish_expert:
            self._expert_pub = {
                a: self.create_publisher(ArmCommand, teleop_source_topic(a), 10) for a in self.arms
            }
        self.ticks = 0
        self.overruns = 0

    def _make_expert(self, seed: int):
        if not self._publish_expert:
            return None
        from habc_sim.expert import ScriptedExpert  # optional: the sim rig, backend sim only

        env = self.backend.env
        # The human's hands get their own stream per layout, like collect's operator.
        rng = np.random.default_rng([max(seed, 0), 1])
        return ScriptedExpert(env, env.cfg.operator.expert, rng)

    def _on_reset(self, req: ResetSim.Request, res: ResetSim.Response) -> ResetSim.Response:
        # The control thread owns the backend (the renderer's GL context lives there): hand the
        # reset to it and wait until it is done.
        done, message = threading.Event(), [""]
        with self._lock:
            self._reset_request = (int(req.seed), done, message)
        if not done.wait(timeout=10.0):
            res.accepted, res.message = False, "reset not done within 10 s (control loop stuck?)"
            return res
        res.accepted, res.message = not message[0], message[0] or f"layout of seed {req.seed}"
        return res

    def _do_reset(self, seed: int) -> str:
        """A new layout; the safety core and the expert start over from the arms' new pose."""
        try:
            self.backend.reset(seed)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the loop goes on
            return f"reset failed: {exc!r}"
        with self._lock:
            self.core.reset()
            self._awaiting_start = True  # the arms hold at their new home until START
        self._seed = seed
        self._expert = self._make_expert(seed)
        self.get_logger().info(f"sim rig reset to the layout of seed {seed}")
        return ""

    def _run(self, backend: str) -> None:
        try:
            self.backend = make_backend(self, backend, self.arms, self.mode)
        except BaseException as exc:  # noqa: BLE001 - re-raised in __init__'s thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        finally:
            self._stop_backend()

    def _loop(self) -> None:
        while not self._go.wait(0.05):
            if self._stop.is_set():
                return
        period = 1.0 / self.hz
        next_t = self._t_start = time.monotonic()
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - a failed tick holds; the loop goes on
                self.get_logger().error(f"control tick failed: {exc!r}")
            took = time.monotonic() - t0
            self._busy += took
            self._worst = max(self._worst, took)
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:  # overrun: restart the schedule rather than burst to catch up
                self.overruns += 1
                next_t = time.monotonic()

    def _stop_backend(self) -> None:
        """Safe state on shutdown: the backend's stop (damping on the X5), then release it."""
        try:
            self.backend.safe_stop()
            elapsed = max(time.monotonic() - self._t_start, 1e-9)
            self.get_logger().info(
                f"arms in their safe state after {self.ticks} ticks in {elapsed:.1f} s "
                f"({self.ticks / elapsed:.1f} Hz, {self.overruns} overruns; tick mean "
                f"{1e3 * self._busy / max(self.ticks, 1):.1f} ms, max {1e3 * self._worst:.1f} ms)"
            )
        finally:
            self.backend.close()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event != EVENT_START:
            return
        with self._lock:
            if self._awaiting_start:
                self._awaiting_start = False
                self._ignore_before_ns = Time.from_msg(msg.header.stamp).nanoseconds

    def _on_command(self, arm: str, msg: ArmCommand) -> None:
        try:
            cmd = Command(
                int(msg.mode), np.asarray(msg.targets), float(msg.gripper), int(msg.authority)
            )
        except ValueError as exc:
            self.get_logger().error(f"{arm}: rejected command: {exc}")
            return
        stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
        with self._lock:
            if self._awaiting_start or stamp_ns < self._ignore_before_ns:
                return  # computed for the layout before a sim reset
            self.core.request(arm, cmd, int(msg.model_index), self._now())

    def _on_authority(self, msg: ControlAuthority) -> None:
        with self._lock:
            self._apply_authority(msg)

    def _apply_authority(self, msg: ControlAuthority) -> None:
        for arm, auth in zip(msg.arm_names, msg.authority, strict=False):
            if arm in self.arms:
                self.core.set_held(arm, auth == AUTHORITY_HOLD)

    def _tick(self) -> None:
        with self._lock:
            reset, self._reset_request = self._reset_request, None
        if reset is not None:
            seed, done, message = reset
            message[0] = self._do_reset(seed)
            done.set()
        stamp = self.get_clock().now().to_msg()
        now = self._now()
        for arm in self.arms:
            with self._lock:
                m, executed = self.core.tick_arm(arm, now)
            js = JointState()
            js.header.stamp = stamp
            js.header.frame_id = base_frame(arm)
            js.name = joint_names(arm)
            js.position = [float(v) for v in m.joints] + [float(m.gripper)]
            self._js_pub[arm].publish(js)
            pose = PoseStamped()
            pose.header.stamp = stamp
            pose.header.frame_id = base_frame(arm)
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (
                float(v) for v in m.ee[:3]
            )
            q = quat_from_ee9(m.ee)
            o = pose.pose.orientation
            o.x, o.y, o.z, o.w = q
            self._pose_pub[arm].publish(pose)
            self._cmd_pub[arm].publish(self._executed(arm, executed, stamp))
            for event in executed.events:
                if event == executed.fault:
                    self.get_logger().error(event)
                elif "clamped" in event:  # counted in clamp_count; a fast target clamps often
                    self.get_logger().warning(event, throttle_duration_sec=1.0)
                else:
                    self.get_logger().warning(event)
        self.backend.step()
        self.ticks += 1
        if self._cam_pub and self.ticks % self.camera_every == 0:
            for cam, rgb in self.backend.render().items():
                if cam in self._cam_pub:
                    self._cam_pub[cam].publish(self._image(rgb, stamp, cam))
        if self._env_state_pub is not None:
            state = np.asarray(self.backend.env_state(), dtype=np.float64)
            self._env_state_pub.publish(Float64MultiArray(data=state.tolist()))
            self._publish_status(stamp)
        if self._expert is not None:
            for arm in self.arms:
                part = np.asarray(self._expert.act_arm(arm), dtype=np.float64)
                cmd = ArmCommand()
                cmd.header.stamp = stamp
                cmd.header.frame_id = base_frame(arm)
                cmd.mode = self.mode
                cmd.targets = [float(v) for v in part[:-1]]
                cmd.gripper = float(part[-1])
                cmd.authority = 1  # HUMAN: the simulated operator's hands
                cmd.model_index = -1
                self._expert_pub[arm].publish(cmd)

    def _executed(self, arm: str, executed, stamp) -> ArmCommand:
        """The command sent to the backend this tick, stamped with the tick (both arms alike)."""
        cmd = executed.command
        msg = ArmCommand()
        msg.header.stamp = stamp
        msg.header.frame_id = base_frame(arm)
        msg.mode = int(cmd.mode)
        msg.targets = [float(v) for v in cmd.targets]
        msg.gripper = float(cmd.gripper)
        msg.authority = int(cmd.authority)
        msg.model_index = int(executed.model_index)
        msg.safety = int(executed.flags)
        return msg

    def _publish_status(self, stamp) -> None:
        done, success, reason = self.backend.task_status()
        msg = SimTaskStatus()
        msg.header.stamp = stamp
        msg.seed = int(self._seed)
        msg.tick = int(self.backend.env.tick)
        msg.done, msg.success, msg.reason = bool(done), bool(success), reason
        self._status_pub.publish(msg)

    @staticmethod
    def _image(rgb: np.ndarray, stamp, cam: str) -> Image:
        img = Image()
        img.header.stamp = stamp
        img.header.frame_id = camera_frame(cam)
        img.height, img.width = int(rgb.shape[0]), int(rgb.shape[1])
        img.encoding = "rgb8"
        img.step = int(rgb.shape[1]) * 3
        img.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
        return img

    def safe_stop(self) -> None:
        """Stop the control loop; its thread puts the arms in their safe state and waits."""
        self._stop.set()
        self._thread.join(timeout=10.0)


def main(args=None) -> None:
    run_node(ArmNode, args)


NODE = ArmNode
