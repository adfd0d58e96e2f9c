"""The physical rig in MuJoCo: joint-target control of two arms + grippers, state readout.

Everything the real driver would do (position-controlled joints at the control rate, gripper
opening in metres) and everything only a simulator can tell (object poses, contacts).
"""

from __future__ import annotations

import mujoco
import numpy as np

from habc_sim.config import SceneConfig
from habc_sim.model import ARMS, GRIPPER_STROKE, JOINTS, build_model


class SimRig:
    def __init__(self, cfg: SceneConfig) -> None:
        self.cfg = cfg
        self.model = build_model(cfg)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._qadr = {
            arm: np.array([m.joint(f"{arm}/{j}").qposadr[0] for j in JOINTS]) for arm in ARMS
        }
        self._vadr = {
            arm: np.array([m.joint(f"{arm}/{j}").dofadr[0] for j in JOINTS]) for arm in ARMS
        }
        self._finger_adr = {
            arm: (m.joint(f"{arm}/finger_a").qposadr[0], m.joint(f"{arm}/finger_b").qposadr[0])
            for arm in ARMS
        }
        self._ctrl = {
            arm: np.array([m.actuator(f"{arm}/act_{j}").id for j in JOINTS]) for arm in ARMS
        }
        self._grip_ctrl = {arm: m.actuator(f"{arm}/act_gripper").id for arm in ARMS}
        self._tool_site = {arm: m.site(f"{arm}/tool").id for arm in ARMS}
        self._base_body = {arm: m.body(f"{arm}/base_link").id for arm in ARMS}
        self._pad_geoms = {
            arm: (m.geom(f"{arm}/pad_a").id, m.geom(f"{arm}/pad_b").id) for arm in ARMS
        }
        self._marker_body = m.body("marker").id
        self._marker_geom = m.geom("marker").id
        self._marker_qadr = m.joint("marker").qposadr[0]
        self._marker_vadr = m.joint("marker").dofadr[0]
        self._lid_qadr = m.joint("lid").qposadr[0]
        self._knob_site = m.site("knob").id
        self._knob_geom = m.geom("knob").id
        self._pouch_mocap = m.body("pouch").mocapid[0]
        self._pouch_body = m.body("pouch").id
        self.base_pos = {
            arm: np.array([0.0, (1.0 if arm == "left" else -1.0) * cfg.arm_base_y, 0.0])
            for arm in ARMS
        }

    # --- episode setup ---
    def reset(
        self,
        q_arms: dict[str, np.ndarray],
        marker_pos: np.ndarray,
        marker_yaw: float,
        pouch_pos: np.ndarray,
        pouch_yaw: float,
    ) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        for arm in ARMS:
            d.qpos[self._qadr[arm]] = q_arms[arm]
            d.ctrl[self._ctrl[arm]] = q_arms[arm]
            a, b = self._finger_adr[arm]
            d.qpos[a] = d.qpos[b] = GRIPPER_STROKE / 2
            d.ctrl[self._grip_ctrl[arm]] = GRIPPER_STROKE
        # Marker lying on the table, its axis (body z) horizontal at `marker_yaw`.
        axis_quat = np.empty(4)
        # Rz(yaw) @ Ry(pi/2): body z -> (cos yaw, sin yaw, 0).
        qz, qy = np.empty(4), np.empty(4)
        mujoco.mju_axisAngle2Quat(qz, [0, 0, 1], marker_yaw)
        mujoco.mju_axisAngle2Quat(qy, [0, 1, 0], np.pi / 2)
        mujoco.mju_mulQuat(axis_quat, qz, qy)
        adr = self._marker_qadr
        d.qpos[adr : adr + 3] = [marker_pos[0], marker_pos[1], self.cfg.marker_radius + 1e-4]
        d.qpos[adr + 3 : adr + 7] = axis_quat
        d.mocap_pos[self._pouch_mocap] = pouch_pos
        pq = np.empty(4)
        mujoco.mju_axisAngle2Quat(pq, [0, 0, 1], pouch_yaw)
        d.mocap_quat[self._pouch_mocap] = pq
        mujoco.mj_forward(m, d)

    # --- control ---
    def command(self, arm: str, q: np.ndarray, gripper: float) -> None:
        self.data.ctrl[self._ctrl[arm]] = q
        self.data.ctrl[self._grip_ctrl[arm]] = min(max(float(gripper), 0.0), GRIPPER_STROKE)

    def step(self) -> None:
        """One control tick: `substeps` physics steps."""
        mujoco.mj_step(self.model, self.data, nstep=self.cfg.substeps)

    @property
    def time(self) -> float:
        return float(self.data.time)

    # --- arm state ---
    def joint_pos(self, arm: str) -> np.ndarray:
        return self.data.qpos[self._qadr[arm]].copy()

    def joint_vel(self, arm: str) -> np.ndarray:
        return self.data.qvel[self._vadr[arm]].copy()

    def joint_target(self, arm: str) -> np.ndarray:
        return self.data.ctrl[self._ctrl[arm]].copy()

    def gripper_opening(self, arm: str) -> float:
        """Measured opening, as the gripper's encoder reports it: within its mechanical range.

        A policy that rams the fingers into the table with the arm's full torque can push
        MuJoCo's (stiff but soft) finger stops a centimetre or two; a real encoder cannot read
        past the stops, and the trainer rejects out-of-range values.
        """
        a, b = self._finger_adr[arm]
        return min(max(float(self.data.qpos[a] + self.data.qpos[b]), 0.0), GRIPPER_STROKE)

    def gripper_target(self, arm: str) -> float:
        return float(self.data.ctrl[self._grip_ctrl[arm]])

    def ee_pose(self, arm: str) -> tuple[np.ndarray, np.ndarray]:
        """Tool point (eef_link) position and rotation in the arm's base frame."""
        sid = self._tool_site[arm]
        pos = self.data.site_xpos[sid] - self.base_pos[arm]
        return pos.copy(), self.data.site_xmat[sid].reshape(3, 3).copy()

    def to_base(self, arm: str, world_xyz: np.ndarray) -> np.ndarray:
        return np.asarray(world_xyz) - self.base_pos[arm]

    # --- object state (simulator only) ---
    def marker_pos(self) -> np.ndarray:
        return self.data.xpos[self._marker_body].copy()

    def marker_axis(self) -> np.ndarray:
        return self.data.xmat[self._marker_body].reshape(3, 3)[:, 2].copy()

    def marker_vel(self) -> np.ndarray:
        adr = self._marker_vadr
        return self.data.qvel[adr : adr + 3].copy()

    def lid_opening(self) -> float:
        return float(self.data.qpos[self._lid_qadr])

    def knob_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._knob_site].copy()

    def pouch_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Pouch origin (floor centre) and rotation in the world."""
        return (
            self.data.xpos[self._pouch_body].copy(),
            self.data.xmat[self._pouch_body].reshape(3, 3).copy(),
        )

    def contact_pairs(self) -> set[tuple[int, int]]:
        """Geom pairs in contact now, both orders (one pass over the contact list per tick)."""
        n = self.data.ncon
        if n == 0:
            return set()
        g1 = self.data.contact.geom1[:n].tolist()
        g2 = self.data.contact.geom2[:n].tolist()
        return set(zip(g1, g2, strict=True)) | set(zip(g2, g1, strict=True))

    def touching(
        self, arm: str, geom: int, pairs: set[tuple[int, int]] | None = None
    ) -> tuple[bool, bool]:
        """Whether each finger pad of `arm` touches `geom`."""
        pairs = self.contact_pairs() if pairs is None else pairs
        pa, pb = self._pad_geoms[arm]
        return (pa, geom) in pairs, (pb, geom) in pairs

    @property
    def marker_geom(self) -> int:
        return self._marker_geom

    @property
    def knob_geom(self) -> int:
        return self._knob_geom
