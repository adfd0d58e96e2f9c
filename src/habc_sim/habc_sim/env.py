"""Gym-style environment over the simulated rig: reset(seed) -> obs, step(action) -> 5-tuple.

Action (EE space, 20-D): per arm, left then right, xyz (3) + 6-D rotation (6) + gripper opening
(1), pose of the tool point in that arm's base frame. Joint space (14-D): per arm 6 joint
positions + gripper. EE targets go through the SDK's IK (`ArmIk`) to joint targets.
Observation keys follow habc_core.features: `proprio` (same layout as the action, measured),
`env_state` (object state, see ENV_STATE_NAMES), `task` (prompt), `images.<camera>` in pixel mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from habc_core.observation import build_observation
from habc_core.rotations import matrix_from_rot6d, rot6d_from_matrix
from habc_sim.cameras import CameraSet
from habc_sim.config import SimConfig
from habc_sim.kinematics import ArmIk
from habc_sim.model import ARMS, GRIPPER_STROKE
from habc_sim.rig import SimRig
from habc_sim.rotations import top_down_rotation
from habc_sim.task import Layout, PouchTask, TaskMonitor, TaskState, sample_layout

EE_ARM_DIM = 10
JOINT_ARM_DIM = 7
ENV_STATE_NAMES: tuple[str, ...] = (
    "marker_x",
    "marker_y",
    "marker_z",
    "marker_axis_x",
    "marker_axis_y",
    "marker_axis_z",
    "marker_vx",
    "marker_vy",
    "marker_vz",
    "lid_opening",
    "pouch_x",
    "pouch_y",
    "pouch_yaw",
)


HOME_TOOL = np.array([0.17, 0.0, 0.15])  # base frame: in front of the base, above the table


@dataclass(frozen=True)
class ArmCommandOut:
    """What one arm was actually told this tick (recorded as the executed action)."""

    mode: str  # "ee" | "joint"
    targets: np.ndarray  # ee: xyz + rot6d (9); joint: 6
    gripper: float
    joint_targets: np.ndarray  # (6,) what reached the joint controllers
    ik_ok: bool


class PouchEnv:
    def __init__(self, cfg: SimConfig | None = None, obs_mode: str | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.obs_mode = obs_mode or self.cfg.env.obs_mode
        self.action_space = self.cfg.env.action_space
        self.rig = SimRig(self.cfg.scene)
        self.task = PouchTask(self.cfg.task)
        self.ik = ArmIk()
        self.cameras: CameraSet | None = (
            CameraSet(self.rig.model, self.cfg.scene.image_size)
            if self.obs_mode == "pixels"
            else None
        )
        home = self.ik.solve(HOME_TOOL, top_down_rotation(np.array([0.0, 1.0])), _Q_SEED)
        if not home.ok:
            raise RuntimeError(f"home pose unreachable: {home}")
        self.q_home = home.q
        self.tick = 0
        self.layout: Layout | None = None
        self.monitor = TaskMonitor()
        self.state: TaskState | None = None
        self.last_command: dict[str, ArmCommandOut] = {}
        self.ik_failures = 0
        self.invalid_actions = 0
        self._ik_cache: dict[str, tuple[bytes, ArmCommandOut]] = {}

    # --- dimensions ---
    @property
    def arm_dim(self) -> int:
        return EE_ARM_DIM if self.action_space == "ee" else JOINT_ARM_DIM

    @property
    def action_dim(self) -> int:
        return self.arm_dim * len(ARMS)

    @property
    def control_hz(self) -> float:
        return self.cfg.scene.control_hz

    @property
    def prompt(self) -> str:
        return self.cfg.task.prompt

    # --- gym API ---
    def reset(self, seed: int) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        self.layout = sample_layout(self.cfg.task, rng)
        lay = self.layout
        self.rig.reset(
            {arm: self.q_home for arm in ARMS},
            lay.marker_pos,
            lay.marker_yaw,
            lay.pouch_pos,
            lay.pouch_yaw,
        )
        self.tick = 0
        self.monitor = TaskMonitor()
        self.ik_failures = 0
        self.invalid_actions = 0
        self._ik_cache = {}
        self.last_command = {arm: self._hold_command(arm) for arm in ARMS}
        # Let the marker settle on the table before the first observation.
        for _ in range(3):
            self.rig.step()
        self.state = self.task.evaluate(self.rig)
        return self.observe()

    def step(
        self, action: np.ndarray | None, images: bool = True
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """One control tick. `action=None` holds both arms (HOLD authority).

        `images=False` leaves the camera images out of the returned observation (no render), for
        a caller that renders only when it needs frames (the sim arm driver publishing cameras).
        """
        if action is not None:
            action = np.asarray(action, dtype=np.float64)
            if action.shape != (self.action_dim,):
                raise ValueError(
                    f"action: expected shape ({self.action_dim},), got {action.shape}"
                )
            for i, arm in enumerate(ARMS):
                self.apply_arm(arm, action[i * self.arm_dim : (i + 1) * self.arm_dim])
        # None: the joint controllers keep their last targets (hold), whoever set them.
        self.rig.step()
        self.tick += 1
        self.state = self.task.evaluate(self.rig)
        self.monitor.update(self.tick, self.state)
        success = self.monitor.succeeded(self.cfg.task.settle_ticks)
        terminated = success or self.state.off_table
        truncated = not terminated and self.tick >= self.cfg.task.t_max
        info = {"success": success, "state": self.state, "progress": self.monitor.progress}
        return self.observe(images), float(success), terminated, truncated, info

    def status(self) -> tuple[bool, bool, str]:
        """(done, success, reason) by the task's own rules, the same ones `step` ends on."""
        if self.monitor.succeeded(self.cfg.task.settle_ticks):
            return True, True, "success"
        if self.state is not None and self.state.off_table:
            return True, False, "marker off the table"
        if self.tick >= self.cfg.task.t_max:
            return True, False, f"step limit ({self.cfg.task.t_max} ticks)"
        return False, False, ""

    def apply_arm(self, arm: str, part: np.ndarray | None) -> ArmCommandOut:
        """Convert one arm's action to joint targets and send it; None holds the last one."""
        if part is not None and not np.isfinite(part).all():
            # NaN / inf from a policy: never reaches the controllers (the real safety layer
            # refuses it too); the arm keeps its last command.
            self.invalid_actions += 1
            part = None
        if part is None:
            cmd = self.last_command[arm]
        elif self.action_space == "ee":
            cmd = self._ee_command(arm, part)
        else:
            q = np.clip(part[:6], self.ik.q_min, self.ik.q_max)
            q = self._limit_step(arm, q)
            cmd = ArmCommandOut("joint", q, float(part[6]), q, True)
        self.rig.command(arm, cmd.joint_targets, cmd.gripper)
        self.last_command[arm] = cmd
        return cmd

    def _ee_command(self, arm: str, part: np.ndarray) -> ArmCommandOut:
        gripper = min(max(float(part[9]), 0.0), GRIPPER_STROKE)
        pose_key = part[:9].tobytes()
        cached = self._ik_cache.get(arm)
        if (
            cached is not None
            and cached[0] == pose_key
            and np.array_equal(cached[1].joint_targets, self.rig.joint_target(arm))
        ):
            # Same pose as last tick and its joint targets were reached in one step: IK would
            # return them again (an arm holding still is common: a held lid, a waiting hand).
            prev = cached[1]
            return ArmCommandOut("ee", prev.targets, gripper, prev.joint_targets, True)
        xyz = part[:3]
        rot = matrix_from_rot6d(part[3:9])
        targets = np.concatenate([xyz, rot6d_from_matrix(rot)])
        res = self.ik.solve(xyz, rot, self.rig.joint_target(arm))
        if res.ok:
            q = self._limit_step(arm, res.q)
        else:
            # An unreachable pose is not executed as some other pose: the arm keeps its target.
            self.ik_failures += 1
            q = self.rig.joint_target(arm)
        cmd = ArmCommandOut("ee", targets, gripper, q, res.ok)
        if res.ok and np.array_equal(q, res.q):
            self._ik_cache[arm] = (pose_key, cmd)
        else:
            self._ik_cache.pop(arm, None)
        return cmd

    def _limit_step(self, arm: str, q: np.ndarray) -> np.ndarray:
        prev = self.rig.joint_target(arm)
        lim = self.cfg.env.max_joint_step
        return prev + np.minimum(np.maximum(q - prev, -lim), lim)

    def _hold_command(self, arm: str) -> ArmCommandOut:
        q = self.rig.joint_target(arm)
        if self.action_space == "ee":
            xyz, rot = self.ik.fk(q)
            targets = np.concatenate([xyz, rot6d_from_matrix(rot)])
            return ArmCommandOut("ee", targets, self.rig.gripper_target(arm), q, True)
        return ArmCommandOut("joint", q, self.rig.gripper_target(arm), q, True)

    # --- observation ---
    def proprio(self) -> np.ndarray:
        parts = []
        for arm in ARMS:
            if self.action_space == "ee":
                xyz, rot = self.rig.ee_pose(arm)
                parts += [xyz, rot6d_from_matrix(rot)]
            else:
                parts.append(self.rig.joint_pos(arm))
            parts.append([self.rig.gripper_opening(arm)])
        return np.concatenate(parts).astype(np.float32)

    def env_state(self) -> np.ndarray:
        rig = self.rig
        axis = rig.marker_axis()
        if axis[1] < 0:  # the marker is symmetric for the task: one canonical direction
            axis = -axis
        ppos, prot = rig.pouch_pose()
        yaw = float(np.arctan2(prot[1, 0], prot[0, 0]))
        return np.concatenate(
            [rig.marker_pos(), axis, rig.marker_vel(), [rig.lid_opening()], ppos[:2], [yaw]]
        ).astype(np.float32)

    def render(self) -> dict[str, np.ndarray]:
        if self.cameras is None:
            raise RuntimeError("render: env built with obs_mode='state' has no cameras")
        return self.cameras.render(self.rig.data)

    def observe(self, images: bool = True) -> dict[str, Any]:
        rendered = self.render() if images and self.cameras is not None else None
        return build_observation(self.proprio(), self.prompt, rendered, self.env_state())

    def close(self) -> None:
        if self.cameras is not None:
            self.cameras.close()
            self.cameras = None


_Q_SEED = np.array([0.0, 1.2, 1.0, -1.0, 0.0, 0.0])
