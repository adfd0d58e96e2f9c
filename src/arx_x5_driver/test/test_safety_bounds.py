"""The arm driver's safety surface, pinned at the shipped defaults (docs/nodes.md "Safety bounds").

Every test here runs the safety core as it ships (`SafetyConfig()`, which is also what the arm
node declares as its parameter defaults) and drives a command exactly past one bound: loosening
the bound, or removing its check, turns the test red. The literal numbers are the documented
bounds on purpose: a change to one of them must be a deliberate change to this file and to
docs/nodes.md, not a side effect.
"""

import numpy as np
import pytest

from arx_x5_driver.backend import KinematicRigBackend
from arx_x5_driver.driver_core import DriverCore
from arx_x5_driver.safety import (
    GRIPPER_MAX,
    X5_JOINT_MAX,
    X5_JOINT_MIN,
    ArmSafety,
    Command,
    Measured,
    SafetyConfig,
)
from habc_core.contract import (
    AUTHORITY_HOLD,
    AUTHORITY_HUMAN,
    AUTHORITY_POLICY,
    MODE_EE,
    MODE_JOINT,
    SAFETY_GRIPPER,
    SAFETY_HOLD,
    SAFETY_JOINT_LIMIT,
    SAFETY_ROTATION,
    SAFETY_STEP,
    SAFETY_WATCHDOG,
    SAFETY_WORKSPACE,
)

# The documented bounds (docs/nodes.md); the SDK's X5 limits from arx5-interface's RobotConfig.
SDK_JOINT_MIN = (-3.14, -0.05, -0.1, -1.6, -1.57, -2.0)
SDK_JOINT_MAX = (2.618, 3.5, 3.2, 1.55, 1.57, 2.0)
JOINT_MARGIN = 0.05
WORKSPACE_MIN = (-0.05, -0.45, -0.05)
WORKSPACE_MAX = (0.60, 0.45, 0.55)
MAX_JOINT_STEP = 0.06
MAX_EE_STEP = 0.015
MAX_ROT_STEP = 0.10
MAX_GRIPPER_STEP = 0.01
GRIPPER_RANGE = (0.0, 0.088)
WATCHDOG_S = 0.25
TRACKING = (0.3, 0.08, 1.0)  # rad (joint mode), m (EE mode), s
TICK = 1.0 / 30.0

HOME_EE = np.array([0.24, 0.0, 0.16, 1, 0, 0, 0, 1, 0], dtype=float)


def shipped() -> SafetyConfig:
    """The config the arm node builds from its declared parameter defaults."""
    defaults = {name: default for name, (default, _text) in SafetyConfig.parameters().items()}
    cfg = SafetyConfig.from_parameters(defaults)
    assert cfg == SafetyConfig(), "the arm node's parameter defaults differ from SafetyConfig()"
    return cfg


def measured(q=None, ee=None, gripper=0.05) -> Measured:
    q = np.zeros(6) if q is None else np.asarray(q, float)
    return Measured(q, HOME_EE.copy() if ee is None else np.asarray(ee, float), gripper)


def joint(q, g=0.05, authority=AUTHORITY_POLICY) -> Command:
    return Command(MODE_JOINT, np.asarray(q, float), g, authority)


def first_tick(cmd: Command, m: Measured, mode: int = MODE_JOINT):
    s = ArmSafety(shipped(), mode=mode)
    s.on_command(cmd, now=0.0)
    return s.tick(0.0, m)


def test_shipped_defaults_are_the_documented_bounds():
    c = shipped()
    assert (c.joint_min, c.joint_max) == (SDK_JOINT_MIN, SDK_JOINT_MAX)
    assert (X5_JOINT_MIN, X5_JOINT_MAX) == (SDK_JOINT_MIN, SDK_JOINT_MAX)
    assert c.joint_margin == JOINT_MARGIN
    assert (c.workspace_min, c.workspace_max) == (WORKSPACE_MIN, WORKSPACE_MAX)
    assert (c.max_joint_step, c.max_ee_step, c.max_rot_step, c.max_gripper_step) == (
        MAX_JOINT_STEP,
        MAX_EE_STEP,
        MAX_ROT_STEP,
        MAX_GRIPPER_STEP,
    )
    assert c.watchdog_s == WATCHDOG_S and GRIPPER_MAX == GRIPPER_RANGE[1]
    assert (c.tracking_error_max, c.tracking_error_ee_max, c.tracking_error_s) == TRACKING
    # every bound a user may set is a driver parameter (nothing hidden, nothing unvalidated)
    assert set(SafetyConfig.parameters()) == {
        "joint_margin",
        "workspace_min",
        "workspace_max",
        "max_joint_step",
        "max_ee_step",
        "max_rot_step",
        "max_gripper_step",
        "watchdog_s",
    }


@pytest.mark.parametrize("i", range(6))
@pytest.mark.parametrize("side", ["max", "min"])
def test_each_joint_stops_at_its_sdk_limit_minus_the_margin(i, side):
    sign = 1.0 if side == "max" else -1.0
    safe = (
        (SDK_JOINT_MAX[i] - JOINT_MARGIN) if side == "max" else (SDK_JOINT_MIN[i] + JOINT_MARGIN)
    )
    q = np.zeros(6)
    q[i] = safe - sign * 0.01  # just inside: one step reaches the limit
    target = q.copy()
    target[i] = safe + sign * 1.0
    out = first_tick(joint(target), measured(q))
    assert out.command.targets[i] == pytest.approx(safe, abs=1e-12)
    assert out.flags & SAFETY_JOINT_LIMIT and not out.holding


@pytest.mark.parametrize("axis", range(3))
@pytest.mark.parametrize("side", ["max", "min"])
def test_ee_target_stops_at_each_face_of_the_workspace_box(axis, side):
    face = WORKSPACE_MAX[axis] if side == "max" else WORKSPACE_MIN[axis]
    sign = 1.0 if side == "max" else -1.0
    ee = HOME_EE.copy()
    ee[axis] = face - sign * 0.005
    target = ee.copy()
    target[axis] = face + sign * 0.5
    out = first_tick(Command(MODE_EE, target, 0.05), measured(ee=ee), MODE_EE)
    assert out.command.targets[axis] == pytest.approx(face, abs=1e-12)
    assert out.flags & SAFETY_WORKSPACE


def test_joint_jump_moves_one_max_step_per_tick():
    out = first_tick(joint([1.0, -1.0, 0.5, 0, 0, 0]), measured([0.0, 1.0, 1.0, 0, 0, 0]))
    np.testing.assert_allclose(
        out.command.targets, [MAX_JOINT_STEP, 1.0 - MAX_JOINT_STEP, 1.0 - MAX_JOINT_STEP, 0, 0, 0]
    )
    assert out.flags & SAFETY_STEP


def test_a_step_inside_the_bound_is_not_shaped():
    out = first_tick(joint([0.9 * MAX_JOINT_STEP, 0, 0, 0, 0, 0]), measured())
    assert out.flags == 0 and out.command.targets[0] == pytest.approx(0.9 * MAX_JOINT_STEP)


def test_ee_jump_moves_one_max_step_per_tick():
    target = HOME_EE.copy()
    target[:3] += [0.1, 0.1, 0.0]
    out = first_tick(Command(MODE_EE, target, 0.05), measured(), MODE_EE)
    moved = out.command.targets[:3] - HOME_EE[:3]
    assert np.linalg.norm(moved) == pytest.approx(MAX_EE_STEP)
    assert out.flags & SAFETY_STEP and not out.flags & SAFETY_WORKSPACE


def test_rotation_jump_turns_one_max_step_per_tick():
    c, s = np.cos(1.0), np.sin(1.0)  # 1 rad about z
    target = np.concatenate([HOME_EE[:3], [c, s, 0, -s, c, 0]])
    out = first_tick(Command(MODE_EE, target, 0.05), measured(), MODE_EE)
    r = out.command.targets
    assert np.arctan2(r[4], r[3]) == pytest.approx(MAX_ROT_STEP)
    assert out.flags & SAFETY_ROTATION


@pytest.mark.parametrize(
    ("start", "target", "expected"),
    [
        (0.085, 0.5, GRIPPER_RANGE[1]),  # clipped to the jaw's range, not one step past it
        (0.005, -0.5, GRIPPER_RANGE[0]),
        (0.05, 0.08, 0.05 + MAX_GRIPPER_STEP),  # one step per tick
        (0.05, 0.02, 0.05 - MAX_GRIPPER_STEP),
    ],
)
def test_gripper_range_and_step(start, target, expected):
    out = first_tick(joint([0] * 6, g=target), measured(gripper=start))
    assert out.command.gripper == pytest.approx(expected, abs=1e-12)
    assert out.flags & SAFETY_GRIPPER


def test_watchdog_holds_one_tick_after_its_bound_and_not_before():
    s = ArmSafety(shipped())
    s.on_command(joint([0.03, 0, 0, 0, 0, 0]), now=0.0)
    assert not s.tick(0.0, measured()).holding
    assert not s.tick(WATCHDOG_S, measured()).holding  # still fresh at the bound
    out = s.tick(WATCHDOG_S + TICK, measured([0.4] * 6))
    assert out.holding and out.flags == SAFETY_WATCHDOG
    assert out.command.authority == AUTHORITY_HOLD
    np.testing.assert_allclose(out.command.targets, [0.03, 0, 0, 0, 0, 0])  # the last target


@pytest.mark.parametrize("authority", [AUTHORITY_POLICY, AUTHORITY_HUMAN])
def test_hold_authority_holds_the_last_target_whatever_the_request(authority):
    s = ArmSafety(shipped())
    s.on_command(joint([0.03, 0, 0, 0, 0, 0], authority=authority), now=0.0)
    s.tick(0.0, measured())
    s.on_command(joint([0.06, 0, 0, 0, 0, 0], authority=AUTHORITY_HOLD), now=TICK)
    out = s.tick(TICK, measured([0.2] * 6))
    assert out.holding and out.flags == SAFETY_HOLD
    np.testing.assert_allclose(out.command.targets, [0.03, 0, 0, 0, 0, 0])


def test_no_command_yet_holds_the_measured_pose():
    out = ArmSafety(shipped()).tick(0.0, measured([0.1] * 6, gripper=0.02))
    assert out.holding and out.flags == SAFETY_HOLD
    np.testing.assert_allclose(out.command.targets, [0.1] * 6)
    assert out.command.gripper == 0.02


@pytest.mark.parametrize(
    ("targets", "gripper", "field"),
    [
        ([0, 0, np.nan, 0, 0, 0], 0.05, "non-finite"),
        ([0, 0, 0, np.inf, 0, 0], 0.05, "non-finite"),
        ([0, 0, 0, 0, 0, 0], np.nan, "non-finite"),
        ([0, 0, 0, 0, 0, 0], -np.inf, "non-finite"),
        ([0, 0, 0, 0, 0], 0.05, "targets"),
    ],
)
def test_a_command_that_cannot_be_executed_is_refused(targets, gripper, field):
    with pytest.raises(ValueError, match=field):
        Command(MODE_JOINT, np.asarray(targets, float), gripper)


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        Command(7, np.zeros(6), 0.05)


def test_tracking_fault_at_its_documented_bounds():
    def run(err: float, seconds: float, ee: bool = False) -> str:
        """On target for one tick, then `err` off it for `seconds`: the fault message, if any."""
        mode = MODE_EE if ee else MODE_JOINT
        s = ArmSafety(shipped(), mode=mode)
        target = HOME_EE.copy() if ee else np.zeros(6)
        on = measured(ee=target) if ee else measured(target)
        off = on.ee.copy() if ee else on.joints.copy()
        off[0] += err
        off_measured = measured(ee=off) if ee else measured(off)
        s.on_command(Command(mode, target, 0.05), now=0.0)
        s.tick(0.0, on)
        for k in range(int(round(seconds / TICK)) + 1):
            t = (k + 1) * TICK
            s.on_command(Command(mode, target, 0.05), now=t)
            s.tick(t, off_measured)
        return s.fault

    joint_max, ee_max, hold_s = TRACKING
    assert run(joint_max + 0.01, hold_s + TICK)
    assert not run(joint_max - 0.01, 2 * hold_s)
    assert not run(joint_max + 0.01, hold_s - 3 * TICK)
    assert run(ee_max + 0.005, hold_s + TICK, ee=True)
    assert not run(ee_max - 0.005, 2 * hold_s, ee=True)


def test_driver_core_holds_an_arm_held_by_authority_whatever_it_is_sent():
    # HOLD arriving after the request: the tick itself replaces the request with a hold
    c = DriverCore(KinematicRigBackend(("left",)), shipped(), MODE_JOINT)
    c.request("left", joint([0.03, 0, 0, 0, 0, 0]), model_index=1, now=0.0)
    c.tick_arm("left", 0.0)
    c.request("left", joint([0.06, 0, 0, 0, 0, 0]), model_index=2, now=TICK)
    c.set_held("left", True)
    _m, ex = c.tick_arm("left", TICK)
    assert ex.holding and ex.command.authority == AUTHORITY_HOLD and ex.model_index == -1
    assert ex.command.targets[0] == pytest.approx(0.03)
    # a request made while held stays a hold even if HOLD is lifted before the next tick
    c.request("left", joint([0.06, 0, 0, 0, 0, 0]), model_index=3, now=2 * TICK)
    c.set_held("left", False)
    _m, ex = c.tick_arm("left", 2 * TICK)
    assert ex.holding and ex.command.targets[0] == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("watchdog_s", 0.0),
        ("max_joint_step", -0.1),
        ("max_ee_step", 0.0),
        ("max_rot_step", 0.0),
        ("max_gripper_step", 0.0),
        ("joint_margin", -0.01),
    ],
)
def test_a_bound_that_disables_its_rule_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        SafetyConfig(**{field: value})
    with pytest.raises(ValueError, match=field):
        SafetyConfig.from_parameters({field: value})


@pytest.mark.parametrize("value", [True, "0.25", None])
def test_a_bound_of_the_wrong_type_is_refused(value):
    with pytest.raises(ValueError, match="watchdog_s"):
        SafetyConfig.from_parameters({"watchdog_s": value})
