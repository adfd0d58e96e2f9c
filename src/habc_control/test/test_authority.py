import numpy as np
import pytest

from habc_control.authority import (
    Authority,
    AuthorityArbiter,
    AuthorityConfig,
    Debouncer,
    blend_pose,
)


def test_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="mode"):
        AuthorityConfig(mode="latch")
    with pytest.raises(ValueError, match="heartbeat_s"):
        AuthorityConfig(heartbeat_s=2.0)
    with pytest.raises(ValueError, match="arms"):
        AuthorityConfig(arms=("left", "left"))


def test_debouncer_ignores_bounce_shorter_than_window():
    d = Debouncer(0.05)
    assert d.update(True, 0.00) is False
    assert d.update(False, 0.02) is False  # bounce back within the window
    assert d.update(True, 0.03) is False
    assert d.update(True, 0.07) is False  # 40 ms stable
    assert d.update(True, 0.08) is True  # 50 ms stable


def test_hold_mode_per_arm_switching():
    arb = AuthorityArbiter(AuthorityConfig(debounce_s=0.0))
    changes = arb.update({"left": True, "right": False}, now=1.0)
    assert [(c.arm, c.current) for c in changes] == [("left", Authority.HUMAN)]
    assert arb.snapshot() == {"left": Authority.HUMAN, "right": Authority.POLICY}
    assert arb.source == "pedal"
    changes = arb.update({"left": False}, now=2.0, source="keyboard")
    assert changes[0].previous == Authority.HUMAN and changes[0].current == Authority.POLICY
    assert arb.source == "keyboard"


def test_debounced_pedal_bounce_does_not_switch():
    arb = AuthorityArbiter(AuthorityConfig(debounce_s=0.03))
    assert arb.update({"left": True}, 0.000) == []
    assert arb.update({"left": False}, 0.010) == []
    assert arb.poll(0.100) == []
    assert arb.authority("left") == Authority.POLICY
    arb.update({"left": True}, 0.200)
    assert arb.authority("left") == Authority.POLICY
    changes = arb.poll(0.231)
    assert arb.authority("left") == Authority.HUMAN and len(changes) == 1


def test_toggle_mode_flips_on_press_edges_only():
    arb = AuthorityArbiter(AuthorityConfig(mode="toggle", debounce_s=0.0))
    arb.update({"right": True}, 0.0)
    assert arb.authority("right") == Authority.HUMAN
    arb.update({"right": True}, 0.5)  # still held: no second flip
    assert arb.authority("right") == Authority.HUMAN
    arb.update({"right": False}, 1.0)
    assert arb.authority("right") == Authority.HUMAN  # release does nothing in toggle mode
    arb.update({"right": True}, 1.5)
    assert arb.authority("right") == Authority.POLICY


def test_hold_is_latched_until_resume():
    arb = AuthorityArbiter(AuthorityConfig(debounce_s=0.0))
    arb.update({"left": True}, 0.0)
    changes = arb.hold_all(1.0, source="pedal", reason="pedal device lost")
    assert {c.arm for c in changes} == {"left", "right"}
    assert all(a == Authority.HOLD for a in arb.snapshot().values())
    assert arb.hold_reason == "pedal device lost"
    assert arb.update({"left": False, "right": True}, 2.0) == []
    assert arb.request("left", Authority.POLICY, 2.0, "keyboard") == []
    assert arb.authority("left") == Authority.HOLD
    arb.resume(3.0, source="keyboard")
    # hold mode: the switch level decides where each arm goes after HOLD
    assert arb.snapshot() == {"left": Authority.POLICY, "right": Authority.HUMAN}
    assert arb.hold_reason == ""


def test_heartbeat_timing():
    arb = AuthorityArbiter(AuthorityConfig(heartbeat_s=0.5))
    assert arb.heartbeat_due(0.0)
    arb.mark_published(0.0)
    assert not arb.heartbeat_due(0.49)
    assert arb.heartbeat_due(0.5)


def test_unknown_arm_is_a_clear_error():
    arb = AuthorityArbiter(AuthorityConfig())
    with pytest.raises(KeyError, match="middle"):
        arb.request("middle", Authority.HUMAN, 0.0, "keyboard")


def test_blend_pose_keeps_rotation_valid_and_hits_endpoints():
    start = np.array([0.1, 0.0, 0.2, 1, 0, 0, 0, 1, 0], dtype=float)
    target = np.array([0.3, 0.1, 0.2, 0, 1, 0, -1, 0, 0], dtype=float)
    np.testing.assert_allclose(blend_pose(start, target, 0.0, ee=True), start)
    np.testing.assert_allclose(blend_pose(start, target, 1.0, ee=True), target, atol=1e-12)
    mid = blend_pose(start, target, 0.5, ee=True)
    np.testing.assert_allclose(mid[:3], [0.2, 0.05, 0.2])
    a, b = mid[3:6], mid[6:9]
    assert abs(np.linalg.norm(a) - 1) < 1e-9 and abs(np.linalg.norm(b) - 1) < 1e-9
    assert abs(a @ b) < 1e-9


def test_authority_watch_holds_before_first_message_and_when_stale():
    from habc_control.authority import AuthorityWatch

    w = AuthorityWatch(("left", "right"), timeout_s=1.0)
    assert set(w.current(0.0).values()) == {Authority.HOLD} and not w.heard
    w.update({"left": Authority.HUMAN, "right": Authority.POLICY}, now=1.0)
    assert w.heard and not w.stale(1.0)
    assert w.current(1.5) == {"left": Authority.HUMAN, "right": Authority.POLICY}
    assert w.current(2.01) == {"left": Authority.HOLD, "right": Authority.HOLD}  # teleop gone
    w.update({"left": Authority.POLICY, "right": Authority.POLICY}, now=2.5)  # heartbeat back
    assert set(w.current(2.6).values()) == {Authority.POLICY}
