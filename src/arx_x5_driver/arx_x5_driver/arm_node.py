"""Arm driver node: a lifecycle node for the rig's arms, backend `kinematic`, `sim` or `arx5`.

Lifecycle (rclpy.lifecycle; `node_main.bring_up` configures and activates it unless the
read-only parameter `autostart` is false, then a lifecycle manager drives it):

* unconfigured: parameters declared and checked (bounds, choices, read-only); no hardware.
* configure: the control loop's thread builds the backend (the SDK connects one controller per
  CAN bus and reads the arms; an X5 starts in the SDK's damping, kp = 0: nothing moves) and
  starts ticking at `control_hz`: /<arm>_arm/joint_states and /<arm>_arm/ee_pose (the graph's
  clock), the sim's cameras and status, /diagnostics. Nothing is sent to the backend and
  requests are ignored: a driver can be brought up and checked before anything moves.
* activate: the backend enables the arms holding where they are (X5: the measured pose
  commanded, then stiffness ramped in; sim and kinematic: nothing to do), then each tick sends
  the newest /<arm>_arm/command_request through the safety core (limits, step clamp, watchdog,
  HOLD) and publishes what was sent on /<arm>_arm/command, with the safety bits that shaped
  it: the recorded action. /control_authority HOLD for an arm holds it whatever is requested.
* deactivate: every arm holds where it is (the safety core's HOLD, still sent each tick: an
  unpowered X5 would sink), requests are ignored; activate again resumes from a fresh request.
* cleanup / shutdown (and `safe_stop()`, the shutdown hook): deactivated first, then the
  backend's safe state (damping on the X5; sim: hold) and closed.

Sim backend only: /sim/reset (ResetSim) puts the rig in a new seeded layout (the arms home, the
safety core forgets its last targets, requests stamped before the reset are ignored), and
/sim/task_status reports the task's own judgement every tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from arx_x5_driver import messages
from arx_x5_driver.arm_params import BACKENDS, arm_param_specs, check_arm_params
from arx_x5_driver.backend import KinematicRigBackend, RigBackend
from arx_x5_driver.diagnostics import DIAGNOSTICS_TOPIC, ArmHealth, RateMeter, arm_status
from arx_x5_driver.driver_core import ArmCounters, DriverCore
from arx_x5_driver.loop_stats import LoopStats, ThreadTimes
from arx_x5_driver.node_main import (
    ReleasingLifecycle,
    freeze_startup_heap,
    lifecycle_state,
    run_node,
)
from arx_x5_driver.qos import (
    AUTHORITY_QOS,
    COMMAND_QOS,
    EVENTS_QOS,
    IMAGE_PUB_QOS,
    STATE_QOS,
)
from arx_x5_driver.realtime import request_fifo
from arx_x5_driver.ros_params import declare_params
from arx_x5_driver.safety import AUTHORITY_HOLD, Command, SafetyConfig
from habc_core import rotations
from habc_core.contract import (
    AUTHORITY_POLICY,
    AUTHORITY_TOPIC,
    ENV_STATE_TOPIC,
    EPISODE_EVENTS_TOPIC,
    EVENT_START,
    MODE_BY_SPACE,
    SIM_RESET_SERVICE,
    SIM_TASK_STATUS_TOPIC,
    command_request_topic,
    command_topic,
    ee_pose_topic,
    image_topic,
    joint_states_topic,
    ros_name,
    teleop_source_topic,
)
from habc_core.features import CAMERA_NAMES
from habc_interfaces.msg import ArmCommand, ControlAuthority, EpisodeEvent, SimTaskStatus
from habc_interfaces.srv import ResetSim

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
_JOB_TIMEOUT_S = 10.0  # a backend call handed to the control loop (enable, sim reset)


def make_backend(p: dict[str, Any], arms: tuple[str, ...], mode: int) -> RigBackend:
    """Build the configured backend from the node's parameter values; errors name what is
    missing."""
    name = p["backend"]
    if name == "kinematic":
        return KinematicRigBackend(arms)
    if name == "arx5":
        # optional: the ARX SDK (arx5_interface), needed by backend arx5 only
        from arx_x5_driver.real_backend import RealBackendConfig, RealRigBackend

        ifaces = dict(zip(arms, p["can_interfaces"], strict=True))
        return RealRigBackend(RealBackendConfig(ifaces, mode))
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
        cameras = int(p["camera_every"]) > 0
        return SimRigBackend(
            arms, mode, p["sim_config"] or None, obs_mode="pixels" if cameras else "state"
        )
    raise ValueError(f"backend: {name!r} is not one of {BACKENDS}")


class _Job:
    """A call the control thread runs for another thread (it owns the backend)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class ArmNode(ReleasingLifecycle, LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("arm_driver", **kwargs)
        self.params = declare_params(self, arm_param_specs())
        check_arm_params(self.params)
        self.arms = tuple(self.params["arms"])
        self.hz = float(self.params["control_hz"])
        self.mode = MODE_BY_SPACE[self.params["action_space"]]
        self.camera_every = int(self.params["camera_every"])
        self.safety_config = SafetyConfig.from_parameters(
            {name: self.params[name] for name in SafetyConfig.parameters()}
        )
        self.transition_error: BaseException | None = None  # read by node_main.bring_up
        self.backend: RigBackend | None = None
        self.core: DriverCore | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = False  # requests go through the safety core to the backend
        self._enabled = False  # backend.enable() ran: from now on every tick sends (or holds)
        self._jobs: list[_Job] = []
        self._entities: list[tuple[Callable[[Any], Any], Any]] = []
        self.ticks = self.overruns = 0
        self._busy = self._worst = 0.0
        self._worst_spent: tuple[float, float | None] = (0.0, None)
        self._t_start = time.monotonic()
        self._tick_error = ""
        self._rate = RateMeter()
        self._overruns_seen = 0
        self._loop_stats = LoopStats(self.hz)
        # Per arm: the stamp of the newest accepted request.
        self._request_stamp_ns: dict[str, int] = {}
        # /diagnostics in every state, unconfigured included (absolute: the aggregator's topic).
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, STATE_QOS)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"arms {self.arms} on backend {self.params['backend']!r} at {self.hz} Hz: unconfigured"
        )

    # --- lifecycle transitions -------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.transition_error = None
        try:
            rotations.preload()  # not in the first tick: it would overrun by 10-20 periods
            self._start_loop()
            self._setup_io()
        except Exception as exc:  # noqa: BLE001 - reported by bring_up / the lifecycle service
            self.transition_error = exc
            self.get_logger().error(f"configure failed: {exc}")
            self._teardown()
            return FAILURE
        # Before the first tick, so that the collection before the freeze pauses no tick.
        freeze_startup_heap()
        self._go.set()  # publishers exist: the loop may tick
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.transition_error = None
        try:
            if not self._enabled:
                self._in_loop(self.backend.enable)
                self._enabled = True
        except Exception as exc:  # noqa: BLE001 - the arms stay unpowered; reported
            self.transition_error = exc
            self.get_logger().error(f"activate failed: enabling the arms: {exc!r}")
            return FAILURE
        with self._lock:
            # The holds sent while inactive are no requests: forgotten, so the arms hold where
            # they are until a fresh request (and an idle arm is no watchdog trip).
            self.core.reset()
            self._active = True
        self.get_logger().info("active: requests go through the safety core to the arms")
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._lock:
            self._active = False
        self.get_logger().info("inactive: every arm holds where it is, requests ignored")
        return SUCCESS

    def safe_stop(self) -> None:
        """Shutdown hook: hold (deactivate), then the arms' safe state and the backend closed."""
        self.finish_lifecycle()

    # --- the control loop's thread ---------------------------------------------------------

    def _start_loop(self) -> None:
        # The loop owns the backend in its own thread: the sim's OpenGL context is bound to the
        # thread that made it, and a plain rate loop keeps the tick independent of how busy the
        # executor is.
        self._stop = threading.Event()
        self._go = threading.Event()
        ready = threading.Event()
        error: list[BaseException] = []
        self.ticks = self.overruns = self._overruns_seen = 0
        self._busy = self._worst = 0.0
        self._worst_spent = (0.0, None)
        self._loop_stats = LoopStats(self.hz)
        self._rate = RateMeter()
        self._rate.rate(0, time.monotonic())  # the first window starts at configure

        def run() -> None:
            try:
                self.backend = make_backend(self.params, self.arms, self.mode)
            except BaseException as exc:  # noqa: BLE001 - re-raised in on_configure's thread
                error.append(exc)
                ready.set()
                return
            ready.set()
            try:
                self._loop()
            finally:
                self._stop_backend()

        self._thread = threading.Thread(target=run, name="arm_control", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            self._thread.join(timeout=10.0)
            self._thread = None
            raise error[0]
        self.core = DriverCore(self.backend, self.safety_config, self.mode)

    def _teardown(self) -> None:
        """Stop the loop (its thread puts the arms in their safe state), drop the topics."""
        with self._lock:
            self._active = False
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10.0)
            self._thread = None
        self._enabled = False
        for destroy, entity in reversed(self._entities):
            destroy(entity)
        self._entities.clear()

    def _loop(self) -> None:
        while not self._go.wait(0.05):
            if self._stop.is_set():
                return
        line, as_asked = request_fifo(int(self.params["loop_priority"]))
        (self.get_logger().info if as_asked else self.get_logger().warning)(line)
        period = 1.0 / self.hz
        next_t = self._t_start = time.monotonic()
        thread_times = ThreadTimes()  # opened here: it describes this thread
        try:
            self._run_loop(period, next_t, thread_times)
        finally:
            thread_times.close()

    def _run_loop(self, period: float, next_t: float, thread_times: ThreadTimes) -> None:
        while not self._stop.is_set():
            t0, (cpu0, wait0) = time.monotonic(), thread_times.now()
            self._loop_stats.tick_started(t0)
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - a failed tick holds; the loop goes on
                self._tick_error = repr(exc)
                self.get_logger().error(f"control tick failed: {exc!r}")
            took = time.monotonic() - t0
            self._busy += took
            if took > self._worst:
                # Where the slowest tick's time went: the loop thread's CPU (the tick's work),
                # its wait for a core, and the rest, blocked (the GIL, the lock, a write).
                cpu1, wait1 = thread_times.now()
                waited = None if wait0 is None or wait1 is None else wait1 - wait0
                self._worst, self._worst_spent = took, (cpu1 - cpu0, waited)
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:  # overrun: restart the schedule rather than burst to catch up
                self.overruns += 1
                next_t = time.monotonic()

    def _stop_backend(self) -> None:
        """Safe state: the backend's stop (damping on the X5), then release it."""
        try:
            self.backend.safe_stop()
            elapsed = max(time.monotonic() - self._t_start, 1e-9)
            self.get_logger().info(
                f"arms in their safe state after {self.ticks} ticks in {elapsed:.1f} s "
                f"({self.ticks / elapsed:.1f} Hz, {self.overruns} overruns; tick mean "
                f"{1e3 * self._busy / max(self.ticks, 1):.1f} ms, max {1e3 * self._worst:.1f} "
                f"ms, of it {_spent_words(self._worst_spent)})"
            )
            self.get_logger().info(f"control loop: {self._loop_stats.summary()}")
        finally:
            self.backend.close()

    def _in_loop(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the control thread (the backend's owner) and wait for it."""
        job = _Job(fn)
        with self._lock:
            self._jobs.append(job)
        if not job.done.wait(timeout=_JOB_TIMEOUT_S):
            raise TimeoutError(f"not done within {_JOB_TIMEOUT_S} s (control loop stuck?)")
        if job.error is not None:
            raise job.error
        return job.result

    def _run_jobs(self) -> None:
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            try:
                job.result = job.fn()
            except Exception as exc:  # noqa: BLE001 - handed back to the waiting thread
                job.error = exc
            job.done.set()

    # --- topics ----------------------------------------------------------------------------

    def _pub(self, msg_type: type, topic: str, qos) -> Any:
        pub = self.create_publisher(msg_type, ros_name(topic), qos)
        self._entities.append((self.destroy_publisher, pub))
        return pub

    def _sub(self, msg_type: type, topic: str, callback: Callable[[Any], None], qos) -> None:
        sub = self.create_subscription(msg_type, ros_name(topic), callback, qos)
        self._entities.append((self.destroy_subscription, sub))

    def _setup_io(self) -> None:
        # After a sim reset the mux and the policy still hold targets of the old layout until they
        # see the episode's START: requests are ignored until START, then those stamped before it.
        self._awaiting_start = False
        self._ignore_before_ns = 0
        self._js_pub = {
            a: self._pub(JointState, joint_states_topic(a), STATE_QOS) for a in self.arms
        }
        self._pose_pub = {
            a: self._pub(PoseStamped, ee_pose_topic(a), STATE_QOS) for a in self.arms
        }
        # The executed command is recorded: every one must reach the recorder, so a state-sized
        # queue rather than the newest-only command profile.
        self._cmd_pub = {a: self._pub(ArmCommand, command_topic(a), STATE_QOS) for a in self.arms}
        for a in self.arms:
            on_command = lambda m, a=a: self._on_command(a, m)  # noqa: E731
            self._sub(ArmCommand, command_request_topic(a), on_command, COMMAND_QOS)
        self._sub(ControlAuthority, AUTHORITY_TOPIC, self._on_authority, AUTHORITY_QOS)
        backend = self.backend
        self._cam_pub = {}
        if self.camera_every > 0 and hasattr(backend, "render"):
            for cam in CAMERA_NAMES:
                self._cam_pub[cam] = self._pub(Image, image_topic(cam), IMAGE_PUB_QOS)
        self._env_state_pub = self._status_pub = None
        self._seed = -1
        if hasattr(backend, "env_state"):  # sim only: privileged state, state-mode policies
            self._env_state_pub = self._pub(Float64MultiArray, ENV_STATE_TOPIC, STATE_QOS)
            self._status_pub = self._pub(SimTaskStatus, SIM_TASK_STATUS_TOPIC, STATE_QOS)
            srv = self.create_service(ResetSim, ros_name(SIM_RESET_SERVICE), self._on_reset)
            self._entities.append((self.destroy_service, srv))
            self._sub(EpisodeEvent, EPISODE_EVENTS_TOPIC, self._on_event, EVENTS_QOS)
        self._publish_expert = bool(self.params["publish_expert"]) and hasattr(backend, "env")
        self._expert = self._make_expert(0)
        if self._publish_expert:
            self._expert_pub = {
                a: self._pub(ArmCommand, teleop_source_topic(a), COMMAND_QOS) for a in self.arms
            }

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
        try:
            message = self._in_loop(lambda: self._do_reset(int(req.seed)))
        except TimeoutError as exc:
            res.accepted, res.message = False, f"reset {exc}"
            return res
        res.accepted, res.message = not message, message or f"layout of seed {req.seed}"
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
            if not self._active:
                return  # inactive: the arms hold (or are not enabled yet), requests ignored
            if self._awaiting_start or stamp_ns < self._ignore_before_ns:
                return  # computed for the layout before a sim reset
            self.core.request(arm, cmd, int(msg.model_index), self._now())
            self._request_stamp_ns[arm] = stamp_ns

    def _on_authority(self, msg: ControlAuthority) -> None:
        with self._lock:
            self._apply_authority(msg)

    def _apply_authority(self, msg: ControlAuthority) -> None:
        for arm, auth in zip(msg.arm_names, msg.authority, strict=False):
            if arm in self.arms:
                self.core.set_held(arm, auth == AUTHORITY_HOLD)

    def _tick(self) -> None:
        self._run_jobs()
        stamp = self.get_clock().now().to_msg()
        now = self._now()
        with self._lock:
            active = self._active
        for arm in self.arms:
            executed = None
            if active or self._enabled:  # enabled but inactive: hold, never the requests
                with self._lock:
                    m, executed = self.core.tick_arm(arm, now, hold=not active)
            else:  # configured, not yet activated: observe only
                m = self.core.observe(arm)
            self._js_pub[arm].publish(messages.joint_state_msg(arm, m, stamp))
            self._pose_pub[arm].publish(messages.ee_pose_msg(arm, m, stamp))
            if executed is not None:
                self._cmd_pub[arm].publish(messages.executed_msg(arm, executed, stamp))
                self._log_events(executed)
                self._note_command_age(arm, executed, stamp)
        self.backend.step()
        self.ticks += 1
        if self._cam_pub and self.ticks % self.camera_every == 0:
            for cam, rgb in self.backend.render().items():
                if cam in self._cam_pub:
                    self._cam_pub[cam].publish(messages.image_msg(rgb, stamp, cam))
        if self._env_state_pub is not None:
            state = np.asarray(self.backend.env_state(), dtype=np.float64)
            self._env_state_pub.publish(Float64MultiArray(data=state.tolist()))
            self._publish_status(stamp)
        if self._expert is not None:
            for arm in self.arms:
                part = np.asarray(self._expert.act_arm(arm), dtype=np.float64)
                self._expert_pub[arm].publish(messages.expert_msg(arm, self.mode, part, stamp))

    def _note_command_age(self, arm: str, executed, stamp) -> None:
        """The mux's request -> the tick that executes it, for a POLICY command; a request
        executed again (no newer one came) counts again, older, as the arm sees it."""
        if executed.holding or executed.command.authority != AUTHORITY_POLICY:
            return
        with self._lock:
            requested = self._request_stamp_ns.get(arm)
        if requested is not None:
            self._loop_stats.command_age((Time.from_msg(stamp).nanoseconds - requested) * 1e-9)

    def _log_events(self, executed) -> None:
        for event in executed.events:
            if event == executed.fault:
                self.get_logger().error(event)
            elif "clamped" in event:  # counted in clamp_count; a fast target clamps often
                self.get_logger().warning(event, throttle_duration_sec=1.0)
            else:
                self.get_logger().warning(event)

    def _publish_status(self, stamp) -> None:
        done, success, reason = self.backend.task_status()
        msg = SimTaskStatus()
        msg.header.stamp = stamp
        msg.seed = int(self._seed)
        msg.tick = int(self.backend.env.tick)
        msg.done, msg.success, msg.reason = bool(done), bool(success), reason
        self._status_pub.publish(msg)

    # --- /diagnostics ----------------------------------------------------------------------

    def _hardware_id(self, arm: str) -> str:
        backend = self.params["backend"]
        if backend == "arx5":
            return f"arx5:{dict(zip(self.arms, self.params['can_interfaces'], strict=True))[arm]}"
        return f"{backend}:{arm}"

    def health(self) -> list[ArmHealth]:
        """Each arm's figures now; the tick rate and overruns over the window since the last
        call (the diagnostics timer's)."""
        state = lifecycle_state(self)
        rate = self._rate.rate(self.ticks, time.monotonic())
        window_overruns, self._overruns_seen = self.overruns - self._overruns_seen, self.overruns
        tick_error, self._tick_error = self._tick_error, ""
        out = []
        for arm in self.arms:
            with self._lock:
                core = self.core
                counters = core.counters(arm) if core is not None else ArmCounters()
                held = core.held(arm) if core is not None else False
            out.append(
                ArmHealth(
                    arm,
                    self._hardware_id(arm),
                    state,
                    held,
                    counters,
                    rate,
                    self.hz,
                    self.overruns,
                    window_overruns,
                    tick_error,
                )
            )
        return out

    def _publish_diagnostics(self) -> None:
        statuses = [arm_status(self.get_name(), h) for h in self.health()]
        self._diag_pub.publish(
            messages.diagnostic_array(statuses, self.get_clock().now().to_msg())
        )


def _spent_words(spent: tuple[float, float | None]) -> str:
    cpu, waited = spent
    words = f"{1e3 * cpu:.1f} ms on the loop thread's CPU"
    return words if waited is None else f"{words}, {1e3 * waited:.1f} ms waiting for a core"


def main(args=None) -> None:
    run_node(ArmNode, args)


NODE = ArmNode
