"""Rotation conventions shared by the sim rig, the expert and the action interface.

Actions and proprio carry orientation as the 6-D rotation of Zhou et al. (first two columns of R,
column-major: r11 r21 r31 r12 r22 r32), the same layout as habc_interfaces/msg/ArmCommand. The ARX
SDK speaks xyz + rpy with R = Rz(yaw) @ Ry(pitch) @ Rx(roll).
"""

from __future__ import annotations

import numpy as np


def rot6d_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(3, 3) -> (6,): the first two columns of R."""
    return np.concatenate([rot[:, 0], rot[:, 1]])


def matrix_from_rot6d(rot6d: np.ndarray) -> np.ndarray:
    """(6,) -> (3, 3) by Gram-Schmidt, so a noisy or interpolated 6-D rotation is still valid."""
    r = np.asarray(rot6d, dtype=np.float64)
    x = r[:3] / max(float(np.sqrt(r[:3] @ r[:3])), 1e-12)
    y = r[3:6] - x * float(x @ r[3:6])
    y = y / max(float(np.sqrt(y @ y)), 1e-12)
    out = np.empty((3, 3))
    out[:, 0], out[:, 1], out[:, 2] = x, y, _cross(x, y)
    return out


def matrix_from_rpy(rpy: np.ndarray) -> np.ndarray:
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def rpy_from_matrix(rot: np.ndarray) -> np.ndarray:
    """Inverse of `matrix_from_rpy`. At the gimbal lock (pitch = +-pi/2, a straight-down gripper)
    roll and yaw are not separable; roll is set to 0 and yaw carries the whole twist, which still
    reproduces R exactly."""
    sp = -float(rot[2, 0])
    pitch = float(np.arcsin(np.clip(sp, -1.0, 1.0)))
    if abs(sp) < 1.0 - 1e-9:
        roll = float(np.arctan2(rot[2, 1], rot[2, 2]))
        yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
    else:
        roll = 0.0
        # With roll = 0: R[0,1] = -sin(yaw), R[1,1] = cos(yaw) for either sign of the lock.
        yaw = float(np.arctan2(-rot[0, 1], rot[1, 1]))
    return np.array([roll, pitch, yaw])


def pose6d_from_xyz_rot(xyz: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """The SDK's pose_6d (xyz + rpy)."""
    return np.concatenate([np.asarray(xyz, dtype=np.float64), rpy_from_matrix(rot)])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross costs ~10x more than this for one pair of 3-vectors (hot path, every tick).
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def top_down_rotation(close_dir_xy: np.ndarray, tilt: float = 0.0) -> np.ndarray:
    """Gripper frame pointing down (approach x = -z), fingers closing along the horizontal unit
    vector `close_dir_xy`. `tilt` leans the approach axis away from the base about the closing
    axis (radians), which keeps joint 4 inside its limit at larger reach."""
    c = np.array([float(close_dir_xy[0]), float(close_dir_xy[1]), 0.0])
    c /= max(float(np.sqrt(c @ c)), 1e-12)
    x = np.array([0.0, 0.0, -1.0])
    z = _cross(x, c)
    if tilt:
        # Rotate x and z about the closing axis c (Rodrigues): lean the approach axis.
        ct, st = np.cos(tilt), np.sin(tilt)
        x = x * ct + _cross(c, x) * st
        z = z * ct + _cross(c, z) * st
    out = np.empty((3, 3))
    out[:, 0], out[:, 1], out[:, 2] = x, c, z
    return out
