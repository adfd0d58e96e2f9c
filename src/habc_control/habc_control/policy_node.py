"""Policy node: observations -> action chunks (inference in a worker) -> one row per tick.

Ticks on /<first arm>_arm/joint_states (the arm driver's clock). Each tick: track authority
(HUMAN/HOLD -> POLICY drops the chunk: the next one is computed from the current observation),
start inference when the ChunkExecutor asks, execute one row of the chunk and publish it per arm
on /policy/<arm>/command for the mux. Every chunk is published on /policy/action_chunk.
Logic: habc_control.chunk_executor; the model behind `infer(obs)`: habc_control.policies.
"""

from __future__ import annotations

import queue
import threading

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray

from arx_x5_driver.node_main import run_node
from arx_x5_driver.qos import (
    AUTHORITY_QOS,
    CHUNK_QOS,
    EVENTS_QOS,
    IMAGE_SUB_QOS,
    POLICY_ROW_QOS,
    STATE_QOS,
)
from arx_x5_driver.ros_params import (
    ACTION_SPACE,
    ARMS,
    ParamSpec,
    declare_params,
    on_dynamic_change,
)
from habc_control.arm_state import ArmStates
from habc_control.authority import Authority
from habc_control.chunk_executor import BOUNDARIES, ChunkExecutor, ChunkExecutorConfig
from habc_control.command_mux import ActionLayout
from habc_control.freshness import IMAGE_TIMEOUT_S, LatestInputs
from habc_control.policies import ACTIONS_OUT, load_policy
from habc_control.ros_common import (
    arm_command_msg,
    authority_from_msg,
    entries,
    follow_ee_poses,
    follow_joint_states,
)
from habc_core import features as F
from habc_core.contract import (
    ACTION_CHUNK_TOPIC,
    AUTHORITY_TOPIC,
    ENV_STATE_TOPIC,
    EPISODE_EVENTS_TOPIC,
    EVENT_START,
    MODE_BY_SPACE,
    image_topic,
    policy_command_topic,
    ros_name,
)
from habc_core.images import decode_image, decode_square
from habc_core.observation import build_observation
from habc_core.policy import PREFIX_GUIDED
from habc_core.policy_client import PolicyServerError
from habc_interfaces.msg import ActionChunk, ArmCommand, ControlAuthority, EpisodeEvent

PARAMS = {
    "arms": ARMS,
    "action_space": ACTION_SPACE,
    "horizon": ParamSpec(50, "H: steps per predicted chunk", bounds=(1, 1000)),
    "execute_steps": ParamSpec(25, "steps of each chunk executed", bounds=(1, 1000)),
    "prefetch_steps": ParamSpec(
        0,
        "start the next inference this early (earlier when inference takes longer)",
        bounds=(0, 1000),
    ),
    "chunk_boundary": ParamSpec(
        "rtc",
        "rtc: the next chunk inpainted on the running one's rows; blend: cross-fade; none",
        choices=BOUNDARIES,
    ),
    "chunk_blend_steps": ParamSpec(8, "rows of the cross-fade at a switch", bounds=(0, 999)),
    "checkpoint": ParamSpec("", "checkpoint dir, module:callable, or '' (hold still)"),
    # The prompt may change between episodes (a START event's task overrides it too).
    "task": ParamSpec("", "task prompt for the next chunks", dynamic=True),
    "cameras": ParamSpec(
        list(F.CAMERA_NAMES), "cameras in the observation", choices=F.CAMERA_NAMES
    ),
    "image_size": ParamSpec(0, "resize images to NxN (0: keep)", bounds=(0, 4096)),
    "image_timeout_s": ParamSpec(
        IMAGE_TIMEOUT_S,
        "an image older than this is left out of the observation (camera stopped)",
        bounds=(0.01, 10.0),
    ),
}


class PolicyNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("policy", **kwargs)
        p = declare_params(self, PARAMS)
        self.arms = tuple(p["arms"])
        self.space = p["action_space"]
        horizon, execute, prefetch = p["horizon"], p["execute_steps"], p["prefetch_steps"]
        spec = p["checkpoint"]
        self.task = p["task"]
        self.cameras = entries(p["cameras"])
        self.image_size = int(p["image_size"])
        image_timeout = p["image_timeout_s"]
        self.layout = ActionLayout(self.arms, self.space)
        self.policy, self.model_index = load_policy(spec, horizon, self.layout.per_arm)
        warm_up = getattr(self.policy, "warm_up", None)
        if callable(warm_up):  # a model's first calls are slow: not inside the control loop
            warm_up()
        self.chunker = ChunkExecutor(
            ChunkExecutorConfig(
                horizon, execute, prefetch, p["chunk_boundary"], p["chunk_blend_steps"]
            )
        )
        self.mode = MODE_BY_SPACE[self.space]
        self._lock = threading.Lock()
        # One inference at a time, in a daemon thread: a model that hangs must not keep the
        # process alive at exit (a thread pool's workers are joined at interpreter exit).
        self._requests: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._serve, name="infer", daemon=True)
        self._worker.start()
        # Unknown until the first /control_authority message: no inference, no commands before.
        self.authority: dict[str, Authority] = {}
        self.states = ArmStates(self.arms)
        self._images = LatestInputs(float(image_timeout))
        self._env_state: np.ndarray | None = None
        self._chunk_pub = self.create_publisher(
            ActionChunk, ros_name(ACTION_CHUNK_TOPIC), CHUNK_QOS
        )
        self._cmd_pub = {
            a: self.create_publisher(ArmCommand, ros_name(policy_command_topic(a)), POLICY_ROW_QOS)
            for a in self.arms
        }
        self.create_subscription(
            ControlAuthority, ros_name(AUTHORITY_TOPIC), self._on_authority, AUTHORITY_QOS
        )
        self.create_subscription(
            EpisodeEvent, ros_name(EPISODE_EVENTS_TOPIC), self._on_event, EVENTS_QOS
        )
        follow_joint_states(self, self.states, self._lock, then=self._on_joint_state)
        follow_ee_poses(self, self.states, self._lock)
        # Privileged sim state for state-mode sim policies (published by the sim arm driver).
        self.create_subscription(
            Float64MultiArray, ros_name(ENV_STATE_TOPIC), self._on_env_state, STATE_QOS
        )
        for cam in self.cameras:
            self.create_subscription(
                Image,
                ros_name(image_topic(cam)),
                lambda m, c=cam: self._on_image(c, m),
                IMAGE_SUB_QOS,  # best effort: camera drivers commonly publish so
            )
        self.chunks = 0
        on_dynamic_change(self, PARAMS, self._on_parameters)
        self.get_logger().info(
            f"policy {type(self.policy).__name__} (model_index {self.model_index}), "
            f"executes {execute} of {horizon} steps"
        )

    def _on_parameters(self, changed: dict) -> None:
        if "task" in changed:
            with self._lock:
                self.task = changed["task"]
            self.get_logger().info(f"task: {changed['task']!r} from the next chunk on")

    # --- inputs ---
    def _on_authority(self, msg: ControlAuthority) -> None:
        with self._lock:
            for arm, auth in authority_from_msg(msg).items():
                if arm in self.arms:
                    self.authority[arm] = auth

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event != EVENT_START:
            return
        with self._lock:
            if msg.task:
                self.task = msg.task
            # A new episode (a new scene): nothing of the last chunk, nor of an inference on an
            # observation from before, may reach the arms.
            self.chunker.invalidate()

    def _on_env_state(self, msg: Float64MultiArray) -> None:
        self._env_state = np.asarray(msg.data, dtype=np.float32)

    def _on_image(self, cam: str, msg: Image) -> None:
        try:
            if self.image_size:
                img = decode_square(msg, compressed=False, size=self.image_size)
            else:
                img = decode_image(msg, compressed=False)
        except ValueError as exc:  # a camera misconfigured: its frames are left out, logged
            self.get_logger().error(f"camera {cam}: {exc}", throttle_duration_sec=2.0)
            return
        now = self.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            self._images.put(cam, np.ascontiguousarray(img), now)

    def _on_joint_state(self, arm: str) -> None:
        if arm == self.arms[0]:  # the first arm's joint_states is the tick
            self._tick()

    # --- the control tick ---
    def _tick(self) -> None:
        with self._lock:
            if set(self.authority) != set(self.arms):
                return
            self.chunker.on_authority(self.authority)
            if self.chunker.should_request():
                proprio = self.states.proprio(self.space)
                if proprio is not None:
                    now = self.get_clock().now().nanoseconds * 1e-9
                    for cam in self._images.newly_stale(now):
                        self.get_logger().error(
                            f"camera {cam}: no image for more than {self._images.timeout_s} s: "
                            "left out of the observation (a policy that needs it holds)"
                        )
                    obs = build_observation(
                        proprio, self.task, self._images.fresh(now), self._env_state
                    )
                    token = self.chunker.begin_request()
                    obs.update(self.chunker.request_inputs())
                    self._requests.put((obs, token, self._images.arrivals(now)))
            step = self.chunker.step()
            # The row answers this tick's observation: stamped with it, the driver can tell
            # how long the graph took from observation to execution (its loop statistics).
            observed_ns = self.states.stamp_ns[self.arms[0]]
        if step is None:
            return
        for arm, target in self.layout.split(step.action).items():
            self._cmd_pub[arm].publish(
                arm_command_msg(
                    self,
                    target,
                    self.mode,
                    Authority.POLICY,
                    step.model_index,
                    stamp_ns=observed_ns or None,
                )
            )

    def _infer(self, obs: dict, token, arrived: dict) -> None:
        # An image may age past image_timeout_s while the request waits for the worker (a
        # slow inference before it, a loaded machine): it is left out then, as at the tick.
        now = self.get_clock().now().nanoseconds * 1e-9
        for cam, t in arrived.items():
            if now - t > self._images.timeout_s:
                obs.pop(F.image_key(cam), None)
        try:
            out = self.policy.infer(obs)
            actions = np.asarray(out[ACTIONS_OUT], dtype=np.float32)
        except PolicyServerError as exc:
            self.get_logger().error(
                f"{exc}; no chunk: the mux holds the arms until the server answers",
                throttle_duration_sec=2.0,
            )
            with self._lock:
                self.chunker.cancel_request()
            return
        except Exception as exc:  # noqa: BLE001 - a failed inference must not kill the node
            # Throttled: a missing camera would otherwise fail (and log) on every tick.
            self.get_logger().error(f"inference failed: {exc!r}", throttle_duration_sec=2.0)
            with self._lock:
                self.chunker.cancel_request()
            return
        # A served policy says which actor step made the chunk (the server may be updated).
        self.model_index = int(out.get("model_index", self.model_index))
        with self._lock:
            rejected = self.chunker.rejected_chunks
            try:
                guided = bool(out.get(PREFIX_GUIDED, False))
                loaded = self.chunker.load(actions, token, self.model_index, guided=guided)
            except ValueError as exc:  # a chunk of the wrong shape: the worker must live on
                self.get_logger().error(f"inference: {exc}", throttle_duration_sec=2.0)
                return
            chunk_id = self.chunker.chunk_id
            refused = self.chunker.rejected_chunks > rejected
        if refused:
            self.get_logger().error(
                "inference returned non-finite actions: chunk dropped, the arms hold "
                "if the policy keeps failing",
                throttle_duration_sec=2.0,
            )
        if not loaded:
            return  # computed before a takeover: a fresh one is requested from the new state
        msg = ActionChunk()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.chunk_id = chunk_id
        msg.model_index = int(self.model_index)
        msg.horizon, msg.action_dim = int(actions.shape[0]), int(actions.shape[1])
        msg.execute_steps = self.chunker.config.execute_steps
        msg.dim_names = self.layout.dim_names()
        msg.actions = actions.ravel().tolist()
        self._chunk_pub.publish(msg)
        self.chunks += 1

    def _serve(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            self._infer(*item)

    def shutdown(self) -> None:
        """Stop taking requests; an inference in flight gets a second to finish, then is left
        behind (a daemon thread: it cannot block the exit)."""
        self._requests.put(None)
        self._worker.join(timeout=1.0)


def main(args=None) -> None:
    run_node(PolicyNode, args)


NODE = PolicyNode
