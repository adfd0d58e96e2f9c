import numpy as np
import pytest

from arx_x5_driver.safety import ArmSafety, Command, Measured, SafetyConfig
from habc_core.contract import AUTHORITY_HOLD, MODE_EE, MODE_JOINT

HOME_EE = np.array([0.24, 0.0, 0.16, 1, 0, 0, 0, 1, 0], dtype=float)


def measured(q=None) -> Measured:
    return Measured(np.zeros(6) if q is None else np.asarray(q, float), HOME_EE.copy(), 0.05)


def jcmd(q, g=0.05, authority=0) -> Command:
    return Command(MODE_JOINT, np.asarray(q, float), g, authority)


def test_config_validation_names_field():
    with pytest.raises(ValueError, match="max_joint_step"):
        SafetyConfig(max_joint_step=0.0)
    with pytest.raises(ValueError, match="workspace"):
        SafetyConfig(workspace_min=(1, 0, 0), workspace_max=(0, 1, 1))
    with pytest.raises(ValueError, match="targets"):
        Command(MODE_JOINT, np.zeros(5), 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        Command(MODE_JOINT, np.array([0, 0, 0, np.nan, 0, 0]), 0.0)


def test_small_step_passes_unchanged():
    s = ArmSafety(SafetyConfig(max_joint_step=0.1))
    s.on_command(jcmd([0.05, 0.1, 0.1, 0, 0, 0]), now=0.0)
    out = s.tick(0.01, measured())
    assert not out.holding and out.events == []
    np.testing.assert_allclose(out.command.targets, [0.05, 0.1, 0.1, 0, 0, 0])


def test_jump_is_clamped_and_reported_never_executed():
    s = ArmSafety(SafetyConfig(max_joint_step=0.05))
    s.on_command(jcmd([1.0, 0, 0, 0, 0, 0]), now=0.0)
    out = s.tick(0.0, measured())
    assert out.command.targets[0] == pytest.approx(0.05)
    assert any("clamped" in e for e in out.events) and s.clamp_count == 1
    # keeps approaching over the next ticks, one step each
    out = s.tick(0.01, measured())
    assert out.command.targets[0] == pytest.approx(0.10)


def test_joint_limits_clip_with_margin():
    cfg = SafetyConfig(max_joint_step=10.0, joint_margin=0.05)
    s = ArmSafety(cfg)
    s.on_command(jcmd([5.0, -1.0, 0, 0, 0, 0]), now=0.0)
    out = s.tick(0.0, measured())
    assert out.command.targets[0] == pytest.approx(2.618 - 0.05)
    assert out.command.targets[1] == pytest.approx(-0.05 + 0.05)
    assert any("joint limits" in e for e in out.events)


def test_ee_workspace_and_step_and_rotation_clamp():
    cfg = SafetyConfig(max_ee_step=0.01, max_rot_step=0.1, workspace_max=(0.5, 0.4, 0.5))
    s = ArmSafety(cfg)
    c, sn = np.cos(1.0), np.sin(1.0)  # 1 rad about z
    target = np.array([0.9, 0.0, 0.16, c, sn, 0, -sn, c, 0])
    s.on_command(Command(MODE_EE, target, 0.05), now=0.0)
    out = s.tick(0.0, measured())
    t = out.command.targets
    assert t[0] == pytest.approx(0.25)  # 0.24 + one 1 cm step toward the clipped x=0.5
    assert np.arctan2(t[4], t[3]) == pytest.approx(0.1)  # rotated by max_rot_step only
    assert any("workspace" in e for e in out.events)
    assert any("rotation" in e for e in out.events)


def test_watchdog_holds_last_target_and_reports_once():
    s = ArmSafety(SafetyConfig(watchdog_s=0.2))
    s.on_command(jcmd([0.03, 0, 0, 0, 0, 0]), now=0.0)
    s.tick(0.1, measured())
    out = s.tick(0.35, measured([0.5] * 6))  # stale command: hold, not the stale target again
    assert out.holding and out.command.authority == AUTHORITY_HOLD
    np.testing.assert_allclose(out.command.targets, [0.03, 0, 0, 0, 0, 0])
    assert any("watchdog" in e for e in out.events)
    assert s.tick(0.40, measured()).events == []  # reported once, not every tick
    s.on_command(jcmd([0.04, 0, 0, 0, 0, 0]), now=0.5)
    assert not s.tick(0.5, measured()).holding


def test_hold_authority_and_no_command_hold_measured_pose():
    s = ArmSafety()
    out = s.tick(0.0, measured([0.1] * 6))  # nothing received yet
    assert out.holding
    np.testing.assert_allclose(out.command.targets, [0.1] * 6)
    s.on_command(jcmd([0.12] * 6, authority=AUTHORITY_HOLD), now=0.0)
    out = s.tick(0.01, measured([0.2] * 6))
    assert out.holding
    np.testing.assert_allclose(out.command.targets, [0.1] * 6)


def test_gripper_step_and_range():
    s = ArmSafety(SafetyConfig(max_gripper_step=0.01))
    s.on_command(jcmd([0] * 6, g=0.5), now=0.0)
    out = s.tick(0.0, measured())
    assert out.command.gripper == pytest.approx(0.06)


def test_arm_not_following_its_target_is_reported_once_as_a_fault():
    s = ArmSafety(SafetyConfig(max_joint_step=1.0, tracking_error_max=0.2, tracking_error_s=0.5))
    s.on_command(jcmd([0.5, 0, 0, 0, 0, 0]), now=0.0)
    assert s.tick(0.0, measured()).events == []
    for t in (0.1, 0.3):  # measured stays at 0: 0.5 rad off, not yet for long enough
        s.on_command(jcmd([0.5, 0, 0, 0, 0, 0]), now=t)
        assert not any("not following" in e for e in s.tick(t, measured()).events)
    s.on_command(jcmd([0.5, 0, 0, 0, 0, 0]), now=0.7)
    out = s.tick(0.7, measured())
    assert any("not following" in e and "restart" in e for e in out.events) and s.fault
    s.on_command(jcmd([0.5, 0, 0, 0, 0, 0]), now=0.8)
    assert s.tick(0.8, measured()).events == []  # reported once


def test_tracking_within_bound_is_no_fault():
    s = ArmSafety(SafetyConfig(tracking_error_s=0.1))
    for i in range(20):
        t = i * 0.05
        s.on_command(jcmd([0.01, 0, 0, 0, 0, 0]), now=t)
        s.tick(t, measured([0.0] * 6))
    assert s.fault == ""
