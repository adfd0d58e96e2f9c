import errno

from evdev import InputEvent, ecodes

from habc_control.authority import Authority, AuthorityArbiter, AuthorityConfig
from habc_control.pedal import PedalConfig, PedalReader
from habc_control.teleop import PedalSupervisor, ScheduledOperator, parse_schedule

KEY_B = ecodes.ecodes["KEY_B"]


class FlakyDevice:
    def __init__(self):
        self.queue, self.unplugged = [], False

    def read_one(self):
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        return self.queue.pop(0) if self.queue else None

    def active_keys(self):
        return []

    def grab(self):
        pass

    def ungrab(self):
        pass

    def close(self):
        pass


def test_pedal_loss_holds_then_resumes_only_after_release():
    dev = FlakyDevice()
    present = {"yes": True}

    def open_device(path):
        if not present["yes"]:
            raise FileNotFoundError(errno.ENOENT, "gone", path)
        dev.unplugged = False
        return dev

    arb = AuthorityArbiter(AuthorityConfig(debounce_s=0.0))
    sup = PedalSupervisor(
        PedalReader(PedalConfig(device="/dev/input/event3"), open_device), arb, 1.0, 0.5
    )
    assert "connected" in sup.tick(0.0).info
    dev.queue.append(InputEvent(0, 0, ecodes.EV_KEY, KEY_B, 1))
    sup.tick(0.1)
    assert set(arb.snapshot().values()) == {Authority.HUMAN}
    dev.unplugged, present["yes"] = True, False
    r = sup.tick(0.2)
    assert "/dev/input/event3" in r.error and "HOLD" in r.error
    assert set(arb.snapshot().values()) == {Authority.HOLD}
    assert sup.tick(0.5).changes == []  # waits reconnect_s before trying again
    present["yes"] = True
    assert "release" in sup.tick(1.3).info
    sup.tick(1.4)
    assert set(arb.snapshot().values()) == {Authority.HOLD}  # still latched
    r = sup.tick(1.95)
    assert "leaving HOLD" in r.info
    assert set(arb.snapshot().values()) == {Authority.POLICY}


def test_scheduled_operator_windows_per_arm_relative_to_episode_start():
    op = ScheduledOperator(parse_schedule(["left:1.0:2.0", "both:3:3.5"]), ("left", "right"))
    assert op.levels(10.0) == {"left": False, "right": False}  # no episode yet
    op.episode_start = 10.0
    assert op.levels(11.5) == {"left": True, "right": False}
    assert op.levels(12.0) == {"left": False, "right": False}
    assert op.levels(13.2) == {"left": True, "right": True}


def test_leader_arms_float_and_report_pose_in_action_space(tmp_path):
    from types import SimpleNamespace

    import numpy as np
    import pytest

    from arx_x5_driver.real_backend import CanInterfaceError, pose9_from_pose6
    from habc_control.leader import LeaderArms, LeaderConfig

    made = []

    class Ctrl:
        def __init__(self, model, iface):
            self.iface, self.gain, self.damped = iface, None, False
            made.append(self)

        def set_gain(self, gain):
            self.gain = gain

        def get_joint_state(self):
            return SimpleNamespace(pos=lambda: np.arange(6.0).reshape(6, 1), gripper_pos=0.03)

        def get_eef_state(self):
            return SimpleNamespace(pose_6d=lambda: np.array([0.3, 0, 0.2, 0, 0.5, 0]))

        def set_to_damping(self):
            self.damped = True

    sdk = SimpleNamespace(
        Arx5JointController=Ctrl, Gain=lambda kp, kd, gkp, gkd: SimpleNamespace(kp=kp, kd=kd)
    )
    (tmp_path / "can2").mkdir()
    leaders = LeaderArms(LeaderConfig({"left": "can2"}, "ee"), sdk, str(tmp_path))
    assert np.all(made[0].gain.kp == 0) and np.all(made[0].gain.kd > 0)
    t = leaders.read("left")
    np.testing.assert_allclose(t.targets, pose9_from_pose6([0.3, 0, 0.2, 0, 0.5, 0]))
    assert t.gripper == 0.03
    leaders.close()
    assert made[0].damped
    with pytest.raises(CanInterfaceError, match="can9"):
        LeaderArms(LeaderConfig({"left": "can9"}), sdk, str(tmp_path))
