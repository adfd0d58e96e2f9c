"""DriverCore: requests through the safety core to the backend, and what it reports as executed."""

import numpy as np
import pytest

from arx_x5_driver.backend import KinematicRigBackend
from arx_x5_driver.driver_core import DriverCore
from arx_x5_driver.safety import Command, SafetyConfig
from habc_core.contract import (
    AUTHORITY_HOLD,
    MODE_JOINT,
    SAFETY_HOLD,
    SAFETY_STEP,
    SAFETY_WATCHDOG,
)


def core(**limits) -> tuple[DriverCore, KinematicRigBackend]:
    backend = KinematicRigBackend(("left", "right"))
    return DriverCore(backend, SafetyConfig(**limits), MODE_JOINT), backend


def joint_cmd(q0: float) -> Command:
    return Command(MODE_JOINT, np.array([q0, 0, 0, 0, 0, 0.0]), 0.05, 0)


def test_executed_is_what_the_backend_got_with_its_safety_bits_and_model_index():
    c, backend = core(max_joint_step=0.05)
    c.request("left", joint_cmd(1.0), model_index=7, now=0.0)
    _m, ex = c.tick_arm("left", 0.0)
    assert backend.sent["left"][-1] is ex.command
    assert ex.command.targets[0] == pytest.approx(0.05) and ex.flags & SAFETY_STEP
    assert ex.model_index == 7 and not ex.holding
    # an arm with no request yet holds where it is, labelled -1
    _m, right = c.tick_arm("right", 0.0)
    assert right.holding and right.flags == SAFETY_HOLD and right.model_index == -1


def test_authority_hold_and_watchdog_hold_and_label_minus_one():
    c, _backend = core(watchdog_s=0.2)
    c.request("left", joint_cmd(0.01), model_index=3, now=0.0)
    c.tick_arm("left", 0.0)
    c.set_held("left", True)
    c.request("left", joint_cmd(0.02), model_index=3, now=0.05)
    _m, ex = c.tick_arm("left", 0.05)
    assert ex.command.authority == AUTHORITY_HOLD and ex.flags & SAFETY_HOLD
    assert ex.model_index == -1 and ex.command.targets[0] == pytest.approx(0.01)
    c.set_held("left", False)
    c.request("left", joint_cmd(0.02), model_index=4, now=0.1)
    _m, ex = c.tick_arm("left", 0.5)  # 0.4 s without a request
    assert ex.flags == SAFETY_WATCHDOG and ex.holding and ex.model_index == -1


def test_reset_forgets_targets_but_not_an_operator_hold():
    c, _backend = core()
    c.request("left", joint_cmd(0.02), model_index=1, now=0.0)
    c.tick_arm("left", 0.0)
    c.set_held("left", True)
    c.reset()
    assert c.held("left") and c.safety["left"].last_sent is None


def test_safety_parameters_round_trip_and_errors_name_the_field():
    names = SafetyConfig.parameters()
    assert (
        SafetyConfig.from_parameters({n: d for n, (d, _text) in names.items()}) == SafetyConfig()
    )
    with pytest.raises(ValueError, match="unknown"):
        SafetyConfig.from_parameters({"max_speed": 1.0})
    with pytest.raises(ValueError, match="workspace_min"):
        SafetyConfig.from_parameters({"workspace_min": [0.0, 0.0]})
    with pytest.raises(ValueError, match="max_ee_step"):
        SafetyConfig.from_parameters({"max_ee_step": True})


def test_observe_sends_nothing_and_hold_freezes_the_arm_until_a_fresh_request():
    c, backend = core(max_joint_step=0.05)
    c.observe("left")
    assert backend.sent["left"] == []
    c.request("left", joint_cmd(1.0), model_index=1, now=0.0)
    c.tick_arm("left", 0.0)
    frozen = backend.sent["left"][-1].targets[0]
    for k in range(1, 4):  # held: the pending request is never executed
        _m, ex = c.tick_arm("left", 0.03 * k, hold=True)
        assert ex.holding and ex.command.targets[0] == pytest.approx(frozen)
    # after the hold, the old request stays replaced: still held until a new one arrives
    _m, ex = c.tick_arm("left", 0.12)
    assert ex.holding and ex.command.targets[0] == pytest.approx(frozen)
    c.request("left", joint_cmd(1.0), model_index=2, now=0.15)
    _m, ex = c.tick_arm("left", 0.15)
    assert not ex.holding and ex.command.targets[0] == pytest.approx(frozen + 0.05)


def test_counters_count_a_watchdog_trip_once_and_survive_a_reset():
    c, _backend = core(watchdog_s=0.2, max_joint_step=0.05)
    c.request("left", joint_cmd(1.0), model_index=1, now=0.0)
    c.tick_arm("left", 0.0)  # clamped once
    for t in (0.3, 0.35, 0.4):  # silent: one trip, then held ticks
        c.tick_arm("left", t)
    n = c.counters("left")
    assert (n.clamps, n.watchdog_trips, n.watchdog_holding) == (1, 1, True)
    c.request("left", joint_cmd(0.05), model_index=1, now=0.5)
    c.tick_arm("left", 0.5)
    assert not c.counters("left").watchdog_holding
    c.reset()
    n = c.counters("left")
    assert (n.clamps, n.watchdog_trips, n.watchdog_holding) == (1, 1, False)
    assert c.counters("right").watchdog_trips == 0
