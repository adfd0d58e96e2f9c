"""RealRigBackend against a fake of the arx5_interface Python API (same names and signatures)."""

from types import SimpleNamespace

import numpy as np
import pytest

from arx_x5_driver.real_backend import (
    CanInterfaceError,
    RealBackendConfig,
    RealRigBackend,
)
from arx_x5_driver.safety import Command
from habc_core.contract import MODE_EE, MODE_JOINT
from habc_core.rotations import ee9_from_pose6, pose6_from_ee9


class FakeEEFState:
    def __init__(self, pose_6d=None, gripper_pos=0.0):
        self._pose = np.zeros(6) if pose_6d is None else np.asarray(pose_6d, float)
        self.gripper_pos = gripper_pos
        self.timestamp = 0.0

    def pose_6d(self):
        return self._pose.reshape(6, 1)


class FakeJointState:
    def __init__(self, pos, vel=None, torque=None, gripper_pos=0.0):
        if isinstance(pos, int):  # JointState(dof)
            pos = np.zeros(pos)
        self._pos = np.asarray(pos, float)
        self.gripper_pos = gripper_pos

    def pos(self):
        return self._pos.reshape(-1, 1)


class FakeGain:
    def __init__(self, kp, kd, gripper_kp, gripper_kd):
        self._kp, self._kd = np.asarray(kp, float), np.asarray(kd, float)
        self.gripper_kp, self.gripper_kd = gripper_kp, gripper_kd

    def kp(self):
        return self._kp


# The SDK's ControllerConfig defaults (X5): stiffness and damping per joint, and the gripper's.
FAKE_CONTROLLER_CONFIG = SimpleNamespace(
    default_kp=np.array([70.0, 70.0, 70.0, 30.0, 30.0, 20.0]),
    default_kd=np.array([2.0, 2.0, 2.0, 1.0, 1.0, 0.7]),
    default_gripper_kp=5.0,
    default_gripper_kd=0.2,
)


class _FakeController:
    instances: list = []

    def __init__(self, model: str, interface: str):
        if model != "X5":
            raise RuntimeError(f"bad model {model}")
        self.model, self.interface = model, interface
        self.joint_cmds, self.eef_cmds = [], []
        self.damped = 0
        self.gains: list[FakeGain] = []  # set_gain calls, in order (none: the SDK's damping)
        _FakeController.instances.append(self)

    def get_joint_state(self):
        return FakeJointState([0.1, 0.2, 0.3, 0, 0, 0], gripper_pos=0.04)

    def get_eef_state(self):
        return FakeEEFState([0.24, 0.0, 0.16, 0.0, 0.3, 0.2], 0.04)

    def set_to_damping(self):
        self.damped += 1

    def get_controller_config(self):
        return FAKE_CONTROLLER_CONFIG

    def set_gain(self, gain):
        # the SDK refuses stiffness while its command is far from the arm: one must be set
        assert self.joint_cmds or self.eef_cmds, "kp > 0 with no command at the arm's pose"
        self.gains.append(gain)


class FakeCartesian(_FakeController):
    def set_eef_cmd(self, state):
        self.eef_cmds.append(state)


class FakeJoint(_FakeController):
    def set_joint_cmd(self, state):
        self.joint_cmds.append(state)


def fake_sdk():
    _FakeController.instances = []
    return SimpleNamespace(
        Arx5CartesianController=FakeCartesian,
        Arx5JointController=FakeJoint,
        EEFState=FakeEEFState,
        JointState=FakeJointState,
        Gain=FakeGain,
    )


@pytest.fixture()
def net(tmp_path):
    for name in ("can0", "can1"):
        (tmp_path / name).mkdir()
    return str(tmp_path)


def test_fake_matches_real_sdk_names():
    import arx5_interface as arx5

    for name in ("Arx5CartesianController", "Arx5JointController", "EEFState", "JointState"):
        assert hasattr(arx5, name)
    assert hasattr(arx5, "Gain")
    for meth in (
        "set_eef_cmd",
        "get_eef_state",
        "get_joint_state",
        "set_to_damping",
        "get_controller_config",
        "set_gain",
    ):
        assert hasattr(arx5.Arx5CartesianController, meth)
    for field in ("default_kp", "default_kd", "default_gripper_kp", "default_gripper_kd"):
        assert hasattr(arx5.ControllerConfig, field)
    assert hasattr(arx5.Arx5JointController, "set_joint_cmd")


def test_missing_can_interface_names_it(net):
    cfg = RealBackendConfig({"left": "can0", "right": "can7"})
    with pytest.raises(CanInterfaceError, match="'can7'"):
        RealRigBackend(cfg, sdk=fake_sdk(), sys_class_net=net)


def test_one_controller_per_arm_and_ee_commands(net):
    sdk = fake_sdk()
    be = RealRigBackend(RealBackendConfig({"left": "can0", "right": "can1"}), sdk, net)
    left, right = _FakeController.instances
    assert (left.interface, right.interface) == ("can0", "can1")
    pose9 = ee9_from_pose6(np.array([0.3, 0.1, 0.2, 0.1, -0.2, 0.3]))
    be.send("left", Command(MODE_EE, pose9, 0.05))
    sent = left.eef_cmds[-1]
    np.testing.assert_allclose(sent.pose_6d().ravel(), [0.3, 0.1, 0.2, 0.1, -0.2, 0.3], atol=1e-9)
    assert sent.gripper_pos == pytest.approx(0.05)
    m = be.read("right")
    np.testing.assert_allclose(m.joints, [0.1, 0.2, 0.3, 0, 0, 0])
    np.testing.assert_allclose(m.ee, ee9_from_pose6([0.24, 0.0, 0.16, 0.0, 0.3, 0.2]))
    with pytest.raises(ValueError, match="mode"):
        be.send("left", Command(MODE_JOINT, np.zeros(6), 0.0))


def test_joint_mode_and_safe_stop_damps_every_arm(net):
    be = RealRigBackend(RealBackendConfig({"left": "can0"}, mode=MODE_JOINT), fake_sdk(), net)
    (ctrl,) = _FakeController.instances
    be.send("left", Command(MODE_JOINT, np.full(6, 0.1), 0.02))
    np.testing.assert_allclose(ctrl.joint_cmds[-1].pos().ravel(), np.full(6, 0.1))
    be.safe_stop()
    assert ctrl.damped == 1


def test_connecting_moves_nothing_and_enable_ramps_stiffness_holding_the_measured_pose(net):
    naps = []
    be = RealRigBackend(
        RealBackendConfig({"left": "can0", "right": "can1"}), fake_sdk(), net, sleep=naps.append
    )
    left, right = _FakeController.instances
    # connected and read, but in the SDK's start-up damping: no command, no gain set
    be.read("left")
    assert not left.eef_cmds and not left.gains
    be.enable(steps=5)
    for ctrl in (left, right):
        # the measured pose is commanded before any stiffness: the arm holds where it is
        np.testing.assert_allclose(
            ctrl.eef_cmds[0].pose_6d().ravel(), [0.24, 0.0, 0.16, 0.0, 0.3, 0.2], atol=1e-9
        )
        kps = [g.kp()[0] for g in ctrl.gains]
        assert kps == pytest.approx([14.0, 28.0, 42.0, 56.0, 70.0])  # ramped, never a jump
        assert all(np.allclose(g._kd, FAKE_CONTROLLER_CONFIG.default_kd) for g in ctrl.gains)
        assert ctrl.gains[-1].gripper_kp == pytest.approx(5.0)
    assert sum(naps) == pytest.approx(0.5)  # enable_ramp_s


def test_rpy_roundtrip():
    p6 = np.array([0.1, 0.2, 0.3, 0.4, -0.5, 1.2])
    np.testing.assert_allclose(pose6_from_ee9(ee9_from_pose6(p6)), p6, atol=1e-12)
