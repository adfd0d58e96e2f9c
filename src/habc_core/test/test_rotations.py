"""The rig's rotation conventions: 6-D rotation, quaternion (x, y, z, w), SDK rpy."""

import numpy as np
import pytest

from habc_core import rotations as R


def rz_ry_rx(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """The SDK's convention written out, to pin it."""
    cr, sr, cp, sp, cy, sy = (
        np.cos(roll),
        np.sin(roll),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(yaw),
        np.sin(yaw),
    )
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ ry @ rx


def random_rotations(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        q, _r = np.linalg.qr(rng.normal(size=(3, 3)))
        out.append(q * np.sign(np.linalg.det(q)))
    return out


def test_rpy_is_the_sdk_convention_and_round_trips():
    for roll, pitch, yaw in [(0.1, -0.4, 2.0), (-2.5, 1.2, -0.3), (0.0, 0.0, 0.0)]:
        rot = R.matrix_from_rpy([roll, pitch, yaw])
        np.testing.assert_allclose(rot, rz_ry_rx(roll, pitch, yaw), atol=1e-12)
        np.testing.assert_allclose(R.rpy_from_matrix(rot), [roll, pitch, yaw], atol=1e-9)


@pytest.mark.parametrize("pitch", [np.pi / 2, -np.pi / 2])
def test_gimbal_lock_still_reproduces_the_rotation_without_a_warning(pitch, recwarn):
    rot = rz_ry_rx(0.3, pitch, -1.1)  # a straight-down gripper
    np.testing.assert_allclose(R.matrix_from_rpy(R.rpy_from_matrix(rot)), rot, atol=1e-9)
    assert not [w for w in recwarn if "Gimbal" in str(w.message)]


def test_6d_quaternion_and_ee9_round_trips():
    for rot in random_rotations(20):
        np.testing.assert_allclose(R.matrix_from_rot6d(R.rot6d_from_matrix(rot)), rot, atol=1e-12)
        q = R.quat_xyzw_from_matrix(rot)
        assert q[3] >= 0 and np.linalg.norm(q) == pytest.approx(1.0)
        np.testing.assert_allclose(R.matrix_from_quat_xyzw(q), rot, atol=1e-12)
        ee9 = np.concatenate([[0.1, -0.2, 0.3], R.rot6d_from_matrix(rot)])
        np.testing.assert_allclose(
            R.ee9_from_xyz_quat(ee9[:3], R.quat_from_ee9(ee9)), ee9, atol=1e-12
        )
        np.testing.assert_allclose(R.ee9_from_pose6(R.pose6_from_ee9(ee9)), ee9, atol=1e-9)


def test_quaternion_of_a_known_rotation():
    half = np.sqrt(0.5)  # 90 degrees about z
    np.testing.assert_allclose(R.quat_from_ee9([0, 0, 0, 0, 1, 0, -1, 0, 0]), [0, 0, half, half])


def test_a_noisy_6d_rotation_is_made_valid():
    r6 = R.orthonormalize_rot6d([2.0, 0.1, 0.0, 0.3, 1.5, 0.2])
    a, b = r6[:3], r6[3:]
    assert np.linalg.norm(a) == pytest.approx(1) and np.linalg.norm(b) == pytest.approx(1)
    assert a @ b == pytest.approx(0, abs=1e-12)


def test_batched_quaternions_match_the_single_conversion():
    rots = random_rotations(8, seed=1)
    quats = np.stack([R.quat_xyzw_from_matrix(r) for r in rots]) * 1.5  # not normalised
    expected = np.stack([R.rot6d_from_matrix(r) for r in rots])
    np.testing.assert_allclose(R.rot6d_from_quats_xyzw(quats), expected, atol=1e-12)


def test_the_closed_form_quaternion_matrix_is_scipys():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(2)
    quats = rng.normal(size=(64, 4)) * rng.uniform(0.2, 3.0, size=(64, 1))  # any sign, any norm
    np.testing.assert_allclose(
        R.matrices_from_quats_xyzw(quats), Rotation.from_quat(quats).as_matrix(), atol=1e-12
    )
    np.testing.assert_allclose(
        R.matrix_from_quat_xyzw(quats[0]), Rotation.from_quat(quats[0]).as_matrix(), atol=1e-12
    )


def test_a_zero_quaternion_is_refused_with_its_row():
    with pytest.raises(ValueError, match="zero norm at row 1"):
        R.matrices_from_quats_xyzw([[0, 0, 0, 1], [0, 0, 0, 0]])
