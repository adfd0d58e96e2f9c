import errno

import pytest
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

    from arx_x5_driver.real_backend import CanInterfaceError
    from habc_control.leader import LeaderArms, LeaderConfig
    from habc_core.rotations import ee9_from_pose6

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
    np.testing.assert_allclose(t.targets, ee9_from_pose6([0.3, 0, 0.2, 0, 0.5, 0]))
    assert t.gripper == 0.03
    leaders.close()
    assert made[0].damped
    with pytest.raises(CanInterfaceError, match="can9"):
        LeaderArms(LeaderConfig({"left": "can9"}), sdk, str(tmp_path))


# --- parameter handling: an empty list has no ROS type and arrives unset ---


def test_string_list_parameters_read_unset_and_empty_entries_as_none():
    from habc_control.ros_common import entries
    from habc_control.teleop_node import pedal_key_map

    assert entries(None) == ()  # `-p sim_schedule:=[]`, habc-rollout's teleop.sim_schedule=[]
    assert entries([""]) == ()  # the declared default: no takeover window
    assert entries(["left:1:2", ""]) == ("left:1:2",)
    assert parse_schedule(entries(None)) == []
    assert pedal_key_map(("both:KEY_B", "left:KEY_A")) == {"both": "KEY_B", "left": "KEY_A"}
    with pytest.raises(ValueError, match="pedal_keys: 'KEY_B' is not 'arm:KEY_NAME'"):
        pedal_key_map(("KEY_B",))


def test_the_runner_passes_an_empty_list_unset():
    from rclpy.parameter import Parameter

    from habc_control.graph import apply_overrides, load_graph_config, node_specs
    from habc_control.runner import ros_parameter

    cfg = apply_overrides(load_graph_config(), {"teleop.sim_schedule": "[]"})
    value = {s.name: s for s in node_specs(cfg)}["teleop"].parameters["sim_schedule"]
    assert value == []
    # rclpy would infer a byte array for [] (and re-infers an override's type from its value),
    # which the node's string-array declaration refuses; unset is accepted by any declaration.
    assert ros_parameter("sim_schedule", value).type_ == Parameter.Type.NOT_SET
    assert ros_parameter("sim_schedule", ["left:1:2"]).type_ == Parameter.Type.STRING_ARRAY


@pytest.mark.ros
def test_an_empty_sim_schedule_is_an_operator_who_never_presses(ros):
    from rclpy.parameter import Parameter

    from habc_control.teleop_node import TeleopNode

    node = TeleopNode(
        context=ros,
        parameter_overrides=[
            Parameter("input", value="sim_operator"),
            Parameter("sim_schedule", Parameter.Type.NOT_SET),
        ],
    )
    try:
        assert node._operator.windows == []
        node._operator.episode_start = 0.0
        assert node._operator.levels(4.0) == dict.fromkeys(node.arms, False)
    finally:
        node.destroy_node()
