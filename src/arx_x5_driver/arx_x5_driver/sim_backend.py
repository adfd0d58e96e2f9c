"""The simulated rig behind the arm node's backend protocol (arx_x5_driver/backend.py).

`read / send / step / safe_stop / close` like the real SDK rig; on top, what only the simulated
rig has: camera frames (the sim arm driver publishes the camera topics), the object state, and
`reset(seed)` for a new randomised episode. Commands are safety-checked by the node before
`send`; here they become joint targets through the same IK path the env uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arx_x5_driver.safety import Measured
from habc_core.contract import MODE_EE, MODE_JOINT
from habc_core.rotations import rot6d_from_matrix
from habc_sim.config import SimConfig, load_sim_config
from habc_sim.env import PouchEnv
from habc_sim.model import ARMS


class SimRigBackend:
    def __init__(
        self,
        arms: tuple[str, ...] = ARMS,
        mode: int = MODE_EE,
        config: str | SimConfig | None = None,
        obs_mode: str = "pixels",
        seed: int = 0,
        env: PouchEnv | None = None,
    ) -> None:
        """`env`: drive an env someone else steps (the DDS-free collector) instead of building
        one: the same read / send as the arm driver's, no second MuJoCo world."""
        if tuple(arms) != ARMS:
            raise ValueError(f"arms: the simulated rig has arms {ARMS}, got {tuple(arms)}")
        if mode not in (MODE_JOINT, MODE_EE):
            raise ValueError(f"mode: expected 0 (joint) or 1 (ee), got {mode!r}")
        self.arms = ARMS
        self.mode = mode
        self.stopped = False
        if env is not None:
            self.env = env
            return
        cfg = config if isinstance(config, SimConfig) else load_sim_config(config)
        self.env = PouchEnv(cfg, obs_mode=obs_mode)
        self.env.reset(seed)

    def reset(self, seed: int) -> None:
        self.env.reset(seed)
        self.stopped = False

    def read(self, arm: str) -> Any:
        rig = self.env.rig
        xyz, rot = rig.ee_pose(arm)
        ee = np.concatenate([xyz, rot6d_from_matrix(rot)])
        return Measured(rig.joint_pos(arm), ee, rig.gripper_opening(arm))

    def send(self, arm: str, command: Any) -> None:
        if self.stopped:
            return
        part = np.append(command.targets, command.gripper)
        if command.mode == MODE_EE:
            if self.env.action_space != "ee":
                raise ValueError("send: EE command to a rig configured for joint actions")
            self.env.apply_arm(arm, part)
        elif self.env.action_space == "joint":
            self.env.apply_arm(arm, part)
        else:
            self.env.rig.command(arm, np.asarray(command.targets), command.gripper)

    def enable(self) -> None:
        """The rig's position controllers already hold the arms (reset leaves them at home)."""
        self.stopped = False

    def step(self) -> None:
        # Commands were applied in send(); the controllers keep them. No images: the node calls
        # render() on the ticks it publishes cameras, so each published frame is rendered once.
        self.env.step(None, images=False)

    def render(self) -> dict[str, np.ndarray]:
        """camera name (top, left_wrist, right_wrist) -> (h, w, 3) uint8 RGB, current state."""
        return self.env.render()

    def env_state(self) -> np.ndarray:
        return self.env.env_state()

    @property
    def task_state(self) -> Any:
        return self.env.state

    def task_status(self) -> tuple[bool, bool, str]:
        """(done, success, reason) of the current episode's task (PouchEnv.status)."""
        return self.env.status()

    def safe_stop(self) -> None:
        """Hold every arm where it is (what the real rig's damping/hold does)."""
        rig = self.env.rig
        for arm in ARMS:
            rig.command(arm, rig.joint_pos(arm), rig.gripper_target(arm))
        self.stopped = True

    def close(self) -> None:
        self.env.close()
