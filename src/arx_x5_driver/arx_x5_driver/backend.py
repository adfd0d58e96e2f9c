"""The arm-backend protocol: what the arm node needs from the real SDK rig or the sim rig.

A backend drives every arm of one rig (the sim steps both arms in one MuJoCo world; the real one
holds one SDK controller per CAN interface). The node calls, per control tick::

    backend.read(arm) -> Measured          # joints (6,), ee (9: xyz + 6-D rot), gripper
    backend.send(arm, command)             # a safety-checked Command (safety.py)
    backend.step()                         # sim: advance physics one tick; real: no-op

and on shutdown `backend.safe_stop()` then `backend.close()`.

`KinematicRigBackend` is a dependency-free stand-in (targets are reached at once, no physics)
for tests and for running the graph with no simulator.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from arx_x5_driver.safety import MODE_JOINT, Command, Measured


@runtime_checkable
class RigBackend(Protocol):
    arms: tuple[str, ...]

    def read(self, arm: str) -> Measured: ...

    def send(self, arm: str, command: Command) -> None: ...

    def step(self) -> None: ...

    def safe_stop(self) -> None: ...

    def close(self) -> None: ...


# EE pose of the X5 tool point at q = 0 (arm base frame), identity orientation.
HOME_EE = np.array([0.2402, 0.0010, 0.1565, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


class KinematicRigBackend:
    """Every command is reached instantly; joint and EE states are tracked independently."""

    def __init__(self, arms: tuple[str, ...] = ("left", "right")) -> None:
        self.arms = tuple(arms)
        self._joints = {a: np.zeros(6) for a in self.arms}
        self._ee = {a: HOME_EE.copy() for a in self.arms}
        self._gripper = dict.fromkeys(self.arms, 0.088)
        self.sent: dict[str, list[Command]] = {a: [] for a in self.arms}
        self.stopped = False
        self.closed = False

    def read(self, arm: str) -> Measured:
        return Measured(self._joints[arm].copy(), self._ee[arm].copy(), self._gripper[arm])

    def send(self, arm: str, command: Command) -> None:
        self.sent[arm].append(command)
        if command.mode == MODE_JOINT:
            self._joints[arm] = command.targets.copy()
        else:
            self._ee[arm] = command.targets.copy()
        self._gripper[arm] = command.gripper

    def step(self) -> None:
        pass

    def safe_stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True


def rot_from_rot6d(r6: np.ndarray) -> np.ndarray:
    """6-D rotation (first two columns of R) -> R, by Gram-Schmidt."""
    a = np.asarray(r6[:3], dtype=np.float64)
    a = a / max(np.linalg.norm(a), 1e-12)
    b = np.asarray(r6[3:6], dtype=np.float64) - a * float(a @ r6[3:6])
    b = b / max(np.linalg.norm(b), 1e-12)
    return np.stack([a, b, np.cross(a, b)], axis=1)


def quat_from_ee9(ee: np.ndarray) -> tuple[float, float, float, float]:
    """xyz + 6-D rotation -> unit quaternion (x, y, z, w) of the rotation."""
    r = rot_from_rot6d(np.asarray(ee, dtype=np.float64)[3:9])
    tr = float(np.trace(r))
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        return (
            (r[2, 1] - r[1, 2]) / s,
            (r[0, 2] - r[2, 0]) / s,
            (r[1, 0] - r[0, 1]) / s,
            0.25 * s,
        )
    i = int(np.argmax(np.diag(r)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
    q = np.empty(3)
    q[i] = 0.25 * s
    q[j] = (r[j, i] + r[i, j]) / s
    q[k] = (r[k, i] + r[i, k]) / s
    return float(q[0]), float(q[1]), float(q[2]), float((r[k, j] - r[j, k]) / s)


def ee9_from_xyz_quat(xyz, quat_xyzw) -> np.ndarray:
    """xyz + quaternion (x, y, z, w) -> xyz + 6-D rotation."""
    x, y, z, w = quat_xyzw
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    return np.concatenate([np.asarray(xyz, dtype=np.float64), r[:, 0], r[:, 1]])
