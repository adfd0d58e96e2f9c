"""IK round trips through the SDK solver, and the MuJoCo model agreeing with the SDK's FK."""

import numpy as np
import pytest

from habc_core.rotations import (
    matrix_from_rot6d,
    matrix_from_rpy,
    rot6d_from_matrix,
    rpy_from_matrix,
)
from habc_sim.kinematics import ArmIk
from habc_sim.rotations import top_down_rotation


@pytest.fixture(scope="module")
def ik() -> ArmIk:
    return ArmIk()


def test_rpy_round_trip_including_the_straight_down_gimbal_lock():
    rng = np.random.default_rng(0)
    rots = [matrix_from_rpy(rng.uniform(-3, 3, 3)) for _ in range(50)]
    rots += [top_down_rotation(np.array([np.cos(a), np.sin(a)])) for a in np.linspace(-3, 3, 13)]
    for rot in rots:
        np.testing.assert_allclose(matrix_from_rpy(rpy_from_matrix(rot)), rot, atol=1e-9)
        np.testing.assert_allclose(matrix_from_rot6d(rot6d_from_matrix(rot)), rot, atol=1e-12)


def test_rot6d_of_a_perturbed_rotation_is_orthonormalised():
    rot = matrix_from_rpy(np.array([0.3, -0.2, 1.0]))
    noisy = rot6d_from_matrix(rot) + 0.05
    out = matrix_from_rot6d(noisy)
    np.testing.assert_allclose(out.T @ out, np.eye(3), atol=1e-12)
    assert np.linalg.det(out) == pytest.approx(1.0)


def test_ik_round_trip_on_random_reachable_configurations(ik: ArmIk):
    rng = np.random.default_rng(1)
    n_ok = 0
    for _ in range(40):
        q = rng.uniform([-1.0, 0.5, 0.5, -1.2, -1.2, -1.5], [1.0, 2.2, 2.0, 1.2, 1.2, 1.5])
        xyz, rot = ik.fk(q)
        res = ik.solve(xyz, rot, q + rng.normal(0, 0.1, 6))
        if res.ok:
            n_ok += 1
            p, r = ik.fk(res.q)
            assert np.linalg.norm(p - xyz) < 0.005
            assert np.linalg.norm(r - rot) < 0.05
        assert np.all(res.q >= ik.q_min) and np.all(res.q <= ik.q_max)
    assert n_ok >= 36  # a seed 0.1 rad away converges almost always


def test_ik_reaches_the_task_workspace_with_a_top_down_gripper(ik: ArmIk):
    seed = np.array([0.0, 1.2, 1.0, -1.0, 0.0, 0.0])
    for xyz in ([0.2, -0.1, 0.02], [0.3, 0.2, 0.02], [0.4, 0.05, 0.1], [0.3, 0.05, 0.15]):
        res = ik.solve(np.array(xyz), top_down_rotation(np.array([0.0, 1.0])), seed)
        assert res.ok, (xyz, res)


def test_unreachable_pose_is_reported_not_executed_elsewhere(ik: ArmIk):
    res = ik.solve(np.array([0.9, 0.0, 0.3]), np.eye(3), np.zeros(6))
    assert not res.ok
    assert np.all(res.q >= ik.q_min) and np.all(res.q <= ik.q_max)


def test_mujoco_tool_site_matches_sdk_fk(ik: ArmIk):
    import mujoco

    from habc_sim.config import SceneConfig
    from habc_sim.rig import SimRig

    rig = SimRig(SceneConfig())
    q = np.array([0.3, 1.1, 0.9, -0.5, 0.4, 0.2])
    for arm in ("left", "right"):
        adr = [rig.model.joint(f"{arm}/joint{i}").qposadr[0] for i in range(1, 7)]
        rig.data.qpos[adr] = q
    mujoco.mj_forward(rig.model, rig.data)
    xyz_sdk, rot_sdk = ik.fk(q)
    for arm in ("left", "right"):
        xyz, rot = rig.ee_pose(arm)
        np.testing.assert_allclose(xyz, xyz_sdk, atol=1e-6)
        np.testing.assert_allclose(rot, rot_sdk, atol=1e-6)
