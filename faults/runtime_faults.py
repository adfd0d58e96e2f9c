"""Faults on the running rig: an unplugged pedal, a stalled policy, NaN actions, a dead camera,
a stop signal in a message flood.

The pedal and stall trials tick the control cores exactly as the nodes do (teleop's pedal
supervisor, the policy node's asynchronous chunk executor, the mux, the arm driver's core on the
kinematic backend), one call per 30 Hz tick and no DDS, so hundreds of trials take seconds. The
NaN trials run whole episodes through the DDS-free collector on the MuJoCo rig (the runtime that
records sim data). The camera trial runs the policy node itself on DDS. The signal trial runs
a node in a process of its own under node_main.run_node (every node's main) and floods it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from faults.core import Fault, NotSurvived
from faults.fakes import PedalPort

HZ = 30.0
TICK = 1.0 / HZ
ARMS = ("left", "right")


# --- shared: the arm side of the graph, ticked by hand ---


class ArmSide:
    """Mux + the arm driver's core on the kinematic backend, ticked as the nodes tick them."""

    def __init__(self) -> None:
        from arx_x5_driver.backend import KinematicRigBackend
        from arx_x5_driver.driver_core import DriverCore
        from arx_x5_driver.safety import SafetyConfig
        from habc_control.command_mux import CommandMux, MuxConfig
        from habc_core.contract import MODE_EE

        self.backend = KinematicRigBackend(ARMS)
        self.core = DriverCore(self.backend, SafetyConfig(), MODE_EE)
        self.mux = CommandMux(MuxConfig(ARMS, "ee"))
        self.mode = MODE_EE
        self.executed: list[dict[str, Any]] = []  # per tick: arm -> Executed

    def measured(self) -> dict[str, Any]:
        from habc_control.command_mux import ArmTarget

        out = {}
        for arm in ARMS:
            m = self.backend.read(arm)
            out[arm] = ArmTarget(np.asarray(m.ee, float), float(m.gripper))
        return out

    def tick(self, now: float, authority, policy=None, human=None, model_index: int = -1) -> None:
        from arx_x5_driver.safety import Command
        from habc_control.authority import Authority

        outs = self.mux.tick(authority, policy or {}, human or {}, self.measured(), model_index)
        for arm in ARMS:
            self.core.set_held(arm, authority[arm] == Authority.HOLD)
            out = outs[arm]
            if out is None:
                continue
            try:
                cmd = Command(
                    self.mode, out.target.targets, out.target.gripper, int(out.authority)
                )
            except ValueError:
                continue  # refused as the arm node refuses it: the watchdog holds
            self.core.request(arm, cmd, out.model_index, now)
        self.executed.append({arm: ex for arm, (_m, ex) in self.core.tick(now).items()})
        self.backend.step()


def _nudged(target, dx: float):
    from habc_control.command_mux import ArmTarget

    t = np.asarray(target.targets, float).copy()
    t[0] += dx
    return ArmTarget(t, target.gripper)


# --- pedal unplugged mid-takeover ---


def _pedal_trials(fast: bool) -> list[tuple[int, float, bool]]:
    """(ticks into the takeover when it is pulled, seconds until it is back, foot still down)."""
    offsets = [0, 1, 5] if fast else [0, 1, 2, 5, 10, 20, 40]
    absences = [0.2, 2.5] if fast else [0.05, 0.2, 0.9, 1.0, 1.1, 2.5, 6.0]
    feet = [True] if fast else [True, False]
    trials = list(itertools.product(offsets, absences, feet))
    return trials[:3] if fast else trials


def _pedal_unplugged(param: object, _workdir: Path) -> str:
    from habc_control.authority import Authority, AuthorityArbiter, AuthorityConfig
    from habc_control.pedal import PedalConfig, PedalReader
    from habc_control.teleop import PedalSupervisor

    pull_after, absent_s, foot_down = param  # type: ignore[misc]
    port = PedalPort()
    reader = PedalReader(PedalConfig("usb-Foot-event-kbd", {"left": "KEY_A"}, ARMS), port.open)
    arbiter = AuthorityArbiter(AuthorityConfig(ARMS))
    sup = PedalSupervisor(reader, arbiter)
    side = ArmSide()
    press_tick, pull_tick = 10, None
    plug_tick = None
    held_pose: dict[str, np.ndarray] = {}
    release_tick = None
    recovered_tick = None
    for k in range(int(12 * HZ)):
        now = k * TICK
        if k == press_tick:
            port.device.press("KEY_A")
        if pull_tick is None and k == press_tick + 2 + pull_after:  # 2: past the debounce
            if arbiter.authority("left") != Authority.HUMAN:
                raise NotSurvived(f"takeover never started (left is {arbiter.authority('left')})")
            port.unplug()
            pull_tick = k
        if pull_tick is not None and plug_tick is None and now - pull_tick * TICK >= absent_s:
            port.plug_in()
            plug_tick = k
            if not foot_down:  # the foot came off while the cable was out
                port.device.down.clear()
                release_tick = k
        if foot_down and plug_tick is not None and release_tick is None and k >= plug_tick + 45:
            port.device.release("KEY_A")  # the foot comes off 1.5 s after the replug
            release_tick = k
        sup.tick(now)
        auth = arbiter.snapshot()
        human = {arm: _nudged(side.measured()[arm], 0.002) for arm in ARMS}
        policy = {arm: _nudged(side.measured()[arm], -0.002) for arm in ARMS}
        side.tick(now, auth, policy, human, model_index=3)
        ex = side.executed[-1]
        if pull_tick is not None and k > pull_tick and recovered_tick is None:
            # from the poll after the pull until the system says it resumed: HOLD, not moving
            if set(auth.values()) != {Authority.HOLD}:
                if release_tick is None or (k - release_tick) * TICK < 1.0 - 1e-9:
                    raise NotSurvived(
                        f"left HOLD {(k - pull_tick) * TICK:.2f} s after the pull "
                        f"(release at tick {release_tick}, now {k})"
                    )
                recovered_tick = k
            else:
                for arm in ARMS:
                    if not ex[arm].holding:
                        raise NotSurvived(f"{arm} executed a non-hold command during HOLD")
                    pose = np.asarray(ex[arm].command.targets)
                    if arm in held_pose and not np.allclose(pose, held_pose[arm]):
                        raise NotSurvived(f"{arm} moved while held")
                    held_pose.setdefault(arm, pose)
        if pull_tick is not None and k == pull_tick + 1 and set(auth.values()) != {Authority.HOLD}:
            raise NotSurvived("the poll after the pull did not hold every arm")
    if recovered_tick is None:
        raise NotSurvived("never left HOLD after the pedal came back and was released")
    waited = (recovered_tick - release_tick) * TICK
    return f"HOLD within one poll of the pull; resumed {waited:.2f} s after the release"


# --- a policy that stalls (inference never returns) ---


def _stall_trials(fast: bool) -> list[tuple[int, int]]:
    """(chunks delivered before the stall, inference latency in ticks)."""
    return [(1, 1), (3, 4)] if fast else list(itertools.product([0, 1, 2, 3, 5], [1, 2, 4, 8]))


def _policy_stalls(param: object, _workdir: Path) -> str:
    from habc_control.authority import Authority
    from habc_control.chunk_executor import ChunkExecutor, ChunkExecutorConfig
    from habc_control.command_mux import ActionLayout, MuxConfig

    chunks_before, latency = param  # type: ignore[misc]
    layout = ActionLayout(ARMS, "ee")
    side = ArmSide()
    executor = ChunkExecutor(ChunkExecutorConfig(50, 25, 5))
    auth = dict.fromkeys(ARMS, Authority.POLICY)
    in_flight: tuple[Any, int] | None = None
    delivered = 0
    last_row_tick = -1
    timeout = MuxConfig().policy_timeout_ticks
    for k in range(int(8 * HZ)):
        now = k * TICK
        executor.on_authority(auth)
        if executor.should_request():
            in_flight = (executor.begin_request(), k + latency)
        if in_flight is not None and k >= in_flight[1] and delivered < chunks_before:
            start = layout.join(side.measured())
            actions = np.repeat(start[None], 50, axis=0)
            actions[:, 0] += 0.001 * np.arange(1, 51)  # left x creeps forward
            executor.load(actions, in_flight[0], model_index=delivered + 1)
            delivered += 1
            in_flight = None
        step = executor.step()
        policy = layout.split(step.action) if step is not None else {}
        if step is not None:
            last_row_tick = k
        side.tick(now, auth, policy, None, step.model_index if step else -1)
    if last_row_tick < 0 and chunks_before > 0:
        raise NotSurvived("no chunk was ever executed")
    after = side.executed[last_row_tick + 1 :]
    if len(after) <= timeout:
        raise NotSurvived("the episode ended before the stall could be judged")
    poses = [np.asarray(t["left"].command.targets) for t in after]
    if not all(np.allclose(p, poses[0]) for p in poses):
        raise NotSurvived("the arm moved after the policy's last row")
    late = after[timeout:]
    for t in late:
        for arm in ARMS:
            if t[arm].command.authority != int(Authority.HOLD) or t[arm].model_index != -1:
                raise NotSurvived(
                    f"{arm} still labelled {t[arm].command.authority} "
                    f"{timeout} ticks after the stall"
                )
    return f"held and labelled HOLD {timeout} ticks after the last row"


# --- NaN / inf actions through the collector ---


def _nan_trials(fast: bool) -> list[tuple[str, str, int]]:
    """(value, which chunks carry it, row index of the bad value)."""
    if fast:
        return [("nan", "one", 0), ("inf", "every", 3)]
    return list(
        itertools.product(["nan", "inf", "-inf"], ["one", "every", "alternate"], [0, 7, 24])
    )


def _corrupting(factory: Callable, value: float, which: str, row: int) -> Callable:
    def make(env: Any, seed: int):
        inner = factory(env, seed)

        class Corrupt:
            model_index = getattr(inner, "model_index", 7)
            calls = 0

            def infer(self, obs):
                out = dict(inner.infer(obs))
                Corrupt.calls += 1
                bad = (
                    which == "every"
                    or (which == "one" and Corrupt.calls == 2)
                    or (which == "alternate" and Corrupt.calls % 2 == 0)
                )
                if bad:
                    actions = np.array(out["actions"], dtype=np.float32, copy=True)
                    actions[row, (Corrupt.calls * 5) % actions.shape[1]] = value
                    out["actions"] = actions
                return out

        return Corrupt()

    return make


def _nan_actions(param: object, _workdir: Path) -> str:
    from habc_control.authority import Authority
    from habc_control.collect import CollectConfig, Collector, NullSink, make_policy_factory
    from habc_sim.config import SimConfig
    from habc_sim.env import PouchEnv

    name, which, row = param  # type: ignore[misc]
    value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[name]

    class Recorder(NullSink):
        def __init__(self) -> None:
            self.executed: list[tuple[str, Any]] = []

        def command(self, arm: str, executed: Any, t_ns: int) -> None:
            self.executed.append((arm, executed))

    env = PouchEnv(SimConfig(), obs_mode="state")
    try:
        factory = make_policy_factory("weak-expert", env.cfg, 50, 25, model_index=7)
        sink = Recorder()
        collector = Collector(
            env, CollectConfig(mode="rollout"), sink, _corrupting(factory, value, which, row)
        )
        summary = collector.run_episode(11)
    finally:
        env.close()
    sent = [ex.command for _arm, ex in sink.executed]
    if not all(np.all(np.isfinite(c.targets)) and np.isfinite(c.gripper) for c in sent):
        raise NotSurvived("a non-finite target reached the arm")
    policy_ticks = sum(1 for _a, ex in sink.executed if ex.command.authority == Authority.POLICY)
    if which == "every" and policy_ticks > 2 * 15 * len(ARMS):
        raise NotSurvived(f"{policy_ticks} POLICY commands from a policy that only returns NaN")
    if which != "every" and policy_ticks == 0:
        raise NotSurvived("a single bad chunk stopped the policy for the whole episode")
    labels = [int(ex.command.authority) for _a, ex in sink.executed]
    split = "/".join(str(labels.count(int(a))) for a in Authority)
    return (
        f"{which} chunk(s) bad: {summary.outcome} after {summary.ticks} ticks, arm-ticks "
        f"POLICY/HUMAN/HOLD {split}; no non-finite target sent"
    )


# --- a camera that stops publishing (the policy node on DDS) ---


class _ObsRecorder:
    """A `module:callable` policy for the node: records which images each inference got."""

    seen: list[tuple[float, tuple[str, ...]]] = []

    def __init__(self) -> None:
        type(self).seen = []
        self.model_index = 1

    def infer(self, obs):
        keys = tuple(sorted(k for k in obs if k.startswith("images.")))
        type(self).seen.append((time.monotonic(), keys))
        proprio = np.asarray(obs["proprio"], np.float32)
        return {"actions": np.repeat(proprio[None], 50, axis=0)}


def recorder_policy() -> _ObsRecorder:
    return _ObsRecorder()


def _camera_trials(fast: bool) -> list[float]:
    """Seconds the camera publishes before it stops."""
    return [0.5] if fast else [0.3, 0.5, 1.0, 2.0]


def _camera_stops(param: object, _workdir: Path) -> str:
    import os

    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image, JointState

    from arx_x5_driver.executors import ExecutorPerNode
    from arx_x5_driver.qos import AUTHORITY_QOS, IMAGE_PUB_QOS
    from habc_control.freshness import IMAGE_TIMEOUT_S
    from habc_control.policy_node import PolicyNode
    from habc_interfaces.msg import ControlAuthority

    publish_s = float(param)  # type: ignore[arg-type]
    context = Context()
    rclpy.init(context=context, domain_id=100 + (os.getpid() + 53) % 100)
    node = probe = None
    spinning = ExecutorPerNode(context)
    try:
        node = PolicyNode(
            context=context,
            parameter_overrides=[
                Parameter("checkpoint", value="faults.runtime_faults:recorder_policy"),
                Parameter("cameras", value=["top"]),
                Parameter("prefetch_steps", value=24),
                Parameter("execute_steps", value=25),
            ],
        )
        probe = Node("camera_fault_probe", context=context)
        js = {a: probe.create_publisher(JointState, f"/{a}_arm/joint_states", 10) for a in ARMS}
        pose = {a: probe.create_publisher(PoseStamped, f"/{a}_arm/ee_pose", 10) for a in ARMS}
        cam = probe.create_publisher(Image, "/camera/top/color/image_raw", IMAGE_PUB_QOS)
        auth = probe.create_publisher(ControlAuthority, "/control_authority", AUTHORITY_QOS)
        spinning.add("policy", node)  # as the runner spins them
        spinning.add("probe", probe)
        spinning.start()
        auth.publish(ControlAuthority(arm_names=list(ARMS), authority=[0, 0]))

        def publish_tick(camera: bool) -> None:
            for a in ARMS:
                p = PoseStamped()
                p.pose.orientation.w = 1.0
                pose[a].publish(p)
                js[a].publish(JointState(position=[0.0] * 7))
            if camera:
                cam.publish(Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48)))
            time.sleep(TICK)

        # DDS discovery takes a while under load: the clock starts once an inference has seen
        # the camera, so the trial measures the node, not discovery.
        deadline = time.monotonic() + 20.0
        while not any("images.top" in k for _t, k in _ObsRecorder.seen):
            if time.monotonic() > deadline:
                raise NotSurvived("no inference saw the camera in 20 s of publishing")
            publish_tick(camera=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < publish_s:
            publish_tick(camera=True)
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < 2.5:
            publish_tick(camera=False)
        seen = list(_ObsRecorder.seen)
        # The node's rule counts from an image's arrival; on a loaded machine the last image
        # may arrive a while after it was published. Its arrival, on the monotonic clock:
        ros_now = node.get_clock().now().nanoseconds * 1e-9
        arrived = node._images._values["top"][1] + (time.monotonic() - ros_now)
    finally:
        spinning.shutdown(timeout_sec=2.0)
        for n in (node, probe):
            if n is not None:
                if hasattr(n, "shutdown"):
                    n.shutdown()
                n.destroy_node()
        rclpy.shutdown(context=context)
    timeout = IMAGE_TIMEOUT_S
    with_image = [t for t, keys in seen if "images.top" in keys]
    if not with_image:
        raise NotSurvived(f"no inference saw the camera in {publish_s} s of publishing")
    late = [t - arrived for t in with_image if t - arrived > timeout + 0.2]
    if late:
        raise NotSurvived(
            f"inference got a frozen image {max(late):.2f} s after it arrived (the camera "
            f"stopped {arrived - stopped_at:.2f} s before that arrival)"
        )
    after = [t for t, _k in seen if t > arrived + timeout + 0.2]
    return (
        f"{len(with_image)} inferences with the image while it published, {len(after)} after "
        f"it stopped, none of them with the frozen image (last image arrived "
        f"{arrived - stopped_at:+.2f} s after the stop)"
    )


# --- a stop signal while a node takes a flood of messages ---


FLOOD_SAFE_STOP_S = 0.3  # the probe's safe stop takes a while, as the X5's damping ramp does


def flood_probe_main() -> None:
    """A run_node node (the shutdown path every node of the rig shares) taking a JointState
    flood; it prints what the trial watches for."""
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from arx_x5_driver.node_main import run_node

    class FloodProbe(Node):
        def __init__(self) -> None:
            super().__init__("flood_probe")
            self.taken = 0
            self.create_subscription(JointState, "/flood", self._on_msg, 100)

        def _on_msg(self, _msg: Any) -> None:
            self.taken += 1
            if self.taken == 1:
                print("TAKING", flush=True)

        def safe_stop(self) -> None:
            print("SAFE_STOP", flush=True)
            end = time.monotonic() + FLOOD_SAFE_STOP_S
            while time.monotonic() < end:  # Python work a signal could interrupt
                sum(range(1000))
            print(f"SAFE_STOP_DONE after {self.taken} messages", flush=True)

    run_node(FloodProbe)


def _signal_trials(fast: bool) -> list[tuple[int, float, str]]:
    """(signal, seconds of flood before it, what follows: "flood", "silence" or "second")."""
    import signal

    if fast:
        return [(signal.SIGINT, 0.4, "flood"), (signal.SIGTERM, 0.3, "second")]
    delays = (0.05, 0.2, 0.35, 0.5, 0.8)
    return [
        (sig, d, after)
        for sig in (signal.SIGINT, signal.SIGTERM)
        for d in delays
        for after in ("flood", "silence", "second")
    ]


def _signal_in_flood(param: object, workdir: Path) -> str:
    import os
    import subprocess
    import sys

    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    sig, flood_s, after = param  # type: ignore[misc]
    domain = 100 + (os.getpid() + 71) % 100
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = Node("flood_source", context=context)
    pub = node.create_publisher(JointState, "/flood", 100)
    msg = JointState(name=[f"j{i}" for i in range(7)], position=[0.0] * 7, velocity=[0.0] * 7)
    log_path = workdir / "probe.log"
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    code = "from faults.runtime_faults import flood_probe_main; flood_probe_main()"

    def flood(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(20):
                pub.publish(msg)
            time.sleep(0.001)

    def log() -> str:
        return log_path.read_text(errors="replace")

    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=repo, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30.0
        while "TAKING" not in log():  # discovered: the flood reaches it
            if proc.poll() is not None or time.monotonic() > deadline:
                raise NotSurvived(f"the probe node never started: {log()[-300:]!r}")
            flood(0.02)
        flood(flood_s)
        proc.send_signal(sig)
        if after == "second":  # Ctrl-C pressed again, or launch's SIGTERM, during the safe stop
            deadline = time.monotonic() + 5.0
            while "SAFE_STOP" not in log() and time.monotonic() < deadline:
                flood(0.005)
            proc.send_signal(sig)
        if after != "silence":
            flood(0.3)
        try:
            rc = proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:  # killed in the finally
            tail = log()[-200:]
            raise NotSurvived(f"still running 10 s after the signal ({after}): {tail!r}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        node.destroy_node()
        rclpy.shutdown(context=context)
    text = log()
    last = text.strip().splitlines()[-1] if text.strip() else ""
    if rc != 0:
        raise NotSurvived(f"exited {rc} after signal {sig} ({after}): {last[:160]!r}")
    if "SAFE_STOP_DONE" not in text:
        raise NotSurvived(f"exited 0 but its safe stop did not finish ({after}): {last[:160]!r}")
    return last.removeprefix("SAFE_STOP_DONE ")


FAULTS = (
    Fault(
        "pedal_unplugged_mid_takeover",
        "runtime",
        "the pedal's USB cable pulled during a takeover, back after 0.05-6 s, foot down or up",
        "every arm HOLD on the next poll, not moving, until the pedal is back and released "
        "for 1 s; then the system resumes",
        _pedal_trials,
        _pedal_unplugged,
    ),
    Fault(
        "policy_stalls",
        "runtime",
        "inference never returns after 0-5 chunks (latency 1-8 ticks)",
        "the arm never moves after the last row; labelled HOLD (model index -1) after the "
        "mux's policy timeout",
        _stall_trials,
        _policy_stalls,
    ),
    Fault(
        "nan_actions",
        "runtime",
        "NaN / ±inf in one, every or every other chunk (rows 0-24), whole sim episodes",
        "no non-finite value reaches the arm; a policy that only returns NaN is held; one bad "
        "chunk does not stop the episode",
        _nan_trials,
        _nan_actions,
    ),
    Fault(
        "camera_stops",
        "runtime",
        "the policy's camera stops publishing after 0.3-2 s (policy node on DDS)",
        "no inference gets an image older than image_timeout_s (0.5 s)",
        _camera_trials,
        _camera_stops,
    ),
    Fault(
        "stop_signal_in_message_flood",
        "runtime",
        "SIGINT / SIGTERM to a node taking a JointState flood (run_node, every node's main): "
        "the flood goes on, stops, or a second signal comes during the 0.3 s safe stop",
        "exit 0 within 10 s, with the safe stop run to its end",
        _signal_trials,
        _signal_in_flood,
    ),
)
