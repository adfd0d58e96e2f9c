"""The per-arm state cache the mux, teleop and policy nodes share (habc_control.arm_state)."""

import numpy as np

from habc_control.arm_state import ArmStates


def test_nothing_is_known_before_the_first_message():
    states = ArmStates(("left", "right"))
    assert states.target("left", "ee") is None
    assert states.target("left", "joint") is None
    assert states.proprio("joint") is None


def test_joint_state_sets_joints_and_the_gripper_when_sent():
    states = ArmStates(("left",))
    states.set_joint_state("left", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.05])
    t = states.target("left", "joint")
    np.testing.assert_allclose(t.targets, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert t.gripper == 0.05
    states.set_joint_state("left", [0.0] * 6)  # no gripper position: the last one stays
    assert states.target("left", "joint").gripper == 0.05
    assert states.target("left", "ee") is None  # no pose yet


def test_target_is_a_copy_and_proprio_waits_for_every_arm():
    states = ArmStates(("left", "right"))
    ee = np.arange(9, dtype=np.float64)
    states.set_ee("left", ee)
    t = states.target("left", "ee")
    t.targets[0] = 99.0
    assert states.ee["left"][0] == 0.0
    assert states.proprio("ee") is None
    states.set_ee("right", ee + 10)
    p = states.proprio("ee")
    assert p.dtype == np.float32 and p.shape == (20,)
    np.testing.assert_allclose(p[:9], ee)
    np.testing.assert_allclose(p[10:19], ee + 10)
