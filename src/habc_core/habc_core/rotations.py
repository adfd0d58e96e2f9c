"""Every rotation conversion the rig uses, once: 6-D rotation, matrix, quaternion, SDK rpy.

Commands, proprio and actions carry an orientation as the 6-D rotation of Zhou et al. (the first
two columns of R, column-major: r11 r21 r31 r12 r22 r32), the layout of habc_interfaces'
ArmCommand; an EE pose is xyz + that (9 values, "ee9"). ROS poses carry quaternions (x, y, z, w);
the ARX SDK speaks xyz + rpy with R = Rz(yaw) @ Ry(pitch) @ Rx(roll). Matrix -> quaternion and
the rpy conversions are scipy's (`scipy.spatial.transform.Rotation`), imported on first use:
scipy.spatial costs 0.24 s to import, paid by every process of the bag converter's pool, whose
only rotation is quaternion -> matrix, the closed form below. The 6-D rotation is not in scipy,
its Gram-Schmidt is its definition.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

# Extrinsic x, then y, then z: R = Rz(yaw) @ Ry(pitch) @ Rx(roll), angles given as (roll, pitch,
# yaw), the SDK's pose_6d convention.
_RPY = "xyz"


def _scipy_rotation() -> Any:
    # Imported here, not at the top: see the module docstring.
    from scipy.spatial.transform import Rotation

    return Rotation


def preload() -> None:
    """Import scipy's rotations now. A control loop calls this before its first tick: imported
    on first use, they cost the arm driver's first tick 0.3-0.7 s of the loop thread's CPU."""
    _scipy_rotation()


def cross3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b for two 3-vectors."""
    # np.cross costs ~10x more than this for one pair of 3-vectors (every tick, every arm).
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def rot6d_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(3, 3) -> (6,): the first two columns of R."""
    rot = np.asarray(rot, dtype=np.float64)
    return np.concatenate([rot[:, 0], rot[:, 1]])


def matrix_from_rot6d(rot6d: np.ndarray) -> np.ndarray:
    """(6,) -> (3, 3) by Gram-Schmidt, so a noisy or interpolated 6-D rotation is still valid."""
    r = np.asarray(rot6d, dtype=np.float64)
    x = r[:3] / max(float(np.sqrt(r[:3] @ r[:3])), 1e-12)
    y = r[3:6] - x * float(x @ r[3:6])
    y = y / max(float(np.sqrt(y @ y)), 1e-12)
    out = np.empty((3, 3))
    out[:, 0], out[:, 1], out[:, 2] = x, y, cross3(x, y)
    return out


def orthonormalize_rot6d(rot6d: np.ndarray) -> np.ndarray:
    """The nearest valid 6-D rotation (Gram-Schmidt): a lerp of two valid ones is not valid."""
    return rot6d_from_matrix(matrix_from_rot6d(rot6d))


def matrix_from_rpy(rpy: np.ndarray) -> np.ndarray:
    """SDK (roll, pitch, yaw) -> R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    return _scipy_rotation().from_euler(_RPY, np.asarray(rpy, dtype=np.float64)).as_matrix()


def rpy_from_matrix(rot: np.ndarray) -> np.ndarray:
    """Inverse of `matrix_from_rpy`. At the gimbal lock (pitch = +-pi/2, a straight-down gripper)
    roll and yaw are not separable; scipy sets one of them to 0 and the other carries the whole
    twist, which still reproduces R exactly (its warning about it is expected here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gimbal lock detected")
        return _scipy_rotation().from_matrix(np.asarray(rot, dtype=np.float64)).as_euler(_RPY)


def quat_xyzw_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(3, 3) -> unit quaternion (x, y, z, w), w >= 0."""
    rot = np.asarray(rot, dtype=np.float64)
    return _scipy_rotation().from_matrix(rot).as_quat(canonical=True)


def matrices_from_quats_xyzw(quats: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (x, y, z, w), each normalised first -> (N, 3, 3) rotation matrices.

    A zero quaternion is no rotation: ValueError, as scipy's `Rotation.from_quat` raises."""
    q = np.asarray(quats, dtype=np.float64).reshape(-1, 4)
    norm = np.sqrt(np.einsum("ij,ij->i", q, q))
    if not np.all(norm > 0):
        raise ValueError(f"quaternion: zero norm at row {int(np.argmin(norm))}")
    x, y, z, w = (q / norm[:, None]).T
    out = np.empty((len(q), 3, 3))
    out[:, 0, 0] = 1 - 2 * (y * y + z * z)
    out[:, 0, 1] = 2 * (x * y - z * w)
    out[:, 0, 2] = 2 * (x * z + y * w)
    out[:, 1, 0] = 2 * (x * y + z * w)
    out[:, 1, 1] = 1 - 2 * (x * x + z * z)
    out[:, 1, 2] = 2 * (y * z - x * w)
    out[:, 2, 0] = 2 * (x * z - y * w)
    out[:, 2, 1] = 2 * (y * z + x * w)
    out[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return out


def matrix_from_quat_xyzw(quat: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w), normalised first -> (3, 3)."""
    return matrices_from_quats_xyzw(quat)[0]


def rot6d_from_quats_xyzw(quats: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (x, y, z, w), normalised first -> (N, 6) 6-D rotations."""
    rot = matrices_from_quats_xyzw(quats)
    return np.concatenate([rot[:, :, 0], rot[:, :, 1]], axis=1)


def quat_from_ee9(ee: np.ndarray) -> tuple[float, float, float, float]:
    """xyz + 6-D rotation -> the rotation's unit quaternion (x, y, z, w)."""
    q = quat_xyzw_from_matrix(matrix_from_rot6d(np.asarray(ee, dtype=np.float64)[3:9]))
    return float(q[0]), float(q[1]), float(q[2]), float(q[3])


def ee9_from_xyz_quat(xyz: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    """xyz + quaternion (x, y, z, w) -> xyz + 6-D rotation."""
    rot = matrix_from_quat_xyzw(quat_xyzw)
    return np.concatenate([np.asarray(xyz, dtype=np.float64), rot6d_from_matrix(rot)])


def ee9_from_pose6(pose6: np.ndarray) -> np.ndarray:
    """SDK pose_6d (xyz + rpy) -> xyz + 6-D rotation."""
    pose6 = np.asarray(pose6, dtype=np.float64).reshape(6)
    return np.concatenate([pose6[:3], rot6d_from_matrix(matrix_from_rpy(pose6[3:]))])


def pose6_from_ee9(ee9: np.ndarray) -> np.ndarray:
    """xyz + 6-D rotation -> SDK pose_6d (xyz + rpy)."""
    ee9 = np.asarray(ee9, dtype=np.float64).reshape(9)
    return np.concatenate([ee9[:3], rpy_from_matrix(matrix_from_rot6d(ee9[3:9]))])


def pose6_from_xyz_matrix(xyz: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """xyz + R -> SDK pose_6d (xyz + rpy)."""
    return np.concatenate([np.asarray(xyz, dtype=np.float64), rpy_from_matrix(rot)])
