"""Authority, pedal and mux safety surface, pinned at the shipped defaults (docs/nodes.md "Safety
bounds"): loosening a default or removing a check turns one of these red.

The numbers are the documented bounds, written out on purpose (see test_safety_bounds.py in
arx_x5_driver for the driver's).
"""

import numpy as np
import pytest

from faults.fakes import PedalPort
from habc_control.authority import (
    AUTHORITY_TIMEOUT_S,
    Authority,
    AuthorityArbiter,
    AuthorityConfig,
    AuthorityWatch,
)
from habc_control.chunk_executor import ChunkExecutor, ChunkExecutorConfig
from habc_control.command_mux import (
    POLICY_TIMEOUT_S,
    ArmTarget,
    CommandMux,
    MuxConfig,
    policy_timeout_ticks,
)
from habc_control.freshness import IMAGE_TIMEOUT_S, LatestInputs
from habc_control.pedal import PedalConfig, PedalReader
from habc_control.teleop import PedalSupervisor

DEBOUNCE_S = 0.03
HEARTBEAT_S = 0.5
AUTHORITY_TIMEOUT = 2.0
RECONNECT_S = 1.0
RESUME_AFTER_S = 1.0
BLEND_STEPS = 15
POLICY_TIMEOUT = 0.5
POLICY_TIMEOUT_TICKS = 15  # at 30 Hz
IMAGE_TIMEOUT = 0.5
HZ = 30.0
TICK = 1.0 / HZ
ARMS = ("left", "right")
P, H, X = Authority.POLICY, Authority.HUMAN, Authority.HOLD


def test_shipped_defaults_are_the_documented_bounds():
    a = AuthorityConfig()
    assert (a.debounce_s, a.heartbeat_s, a.mode, a.initial) == (DEBOUNCE_S, HEARTBEAT_S, "hold", P)
    assert AUTHORITY_TIMEOUT_S == AUTHORITY_TIMEOUT
    assert AuthorityWatch(ARMS).timeout_s == AUTHORITY_TIMEOUT
    sup = PedalSupervisor(None, AuthorityArbiter(a))
    assert (sup.reconnect_s, sup.resume_after_s) == (RECONNECT_S, RESUME_AFTER_S)
    m = MuxConfig()
    assert (m.blend_steps, m.policy_timeout_ticks) == (BLEND_STEPS, POLICY_TIMEOUT_TICKS)
    assert POLICY_TIMEOUT_S == POLICY_TIMEOUT
    assert policy_timeout_ticks(POLICY_TIMEOUT_S, HZ) == POLICY_TIMEOUT_TICKS
    assert IMAGE_TIMEOUT_S == IMAGE_TIMEOUT and LatestInputs().timeout_s == IMAGE_TIMEOUT
    assert PedalConfig(device="x").grab is True  # the pedal never types into a terminal


# --- the arbiter ---


def test_a_press_shorter_than_the_debounce_does_not_switch_and_a_longer_one_does():
    arb = AuthorityArbiter(AuthorityConfig())
    arb.update({"left": True}, 0.0)
    arb.update({"left": False}, DEBOUNCE_S * 0.9)  # bounce
    arb.poll(1.0)
    assert arb.authority("left") == P
    arb.update({"left": True}, 2.0)
    assert arb.poll(2.0 + DEBOUNCE_S * 0.9) == []
    arb.poll(2.0 + DEBOUNCE_S + 1e-9)
    assert arb.authority("left") == H and arb.authority("right") == P


def test_hold_is_latched_against_switches_and_requests():
    arb = AuthorityArbiter(AuthorityConfig(debounce_s=0.0))
    arb.hold_all(0.0, "pedal", "device lost")
    arb.update({"left": True, "right": False}, 0.1)
    arb.update({"left": False}, 0.2)
    assert arb.request("left", P, 0.3, "keyboard") == []
    assert arb.request("right", H, 0.3, "sim_operator") == []
    assert set(arb.snapshot().values()) == {X}


def test_resume_hands_a_pressed_switch_to_the_human_never_to_the_policy():
    arb = AuthorityArbiter(AuthorityConfig(debounce_s=0.0))
    arb.update({"left": True, "right": False}, 0.0)
    arb.hold_all(0.1, "pedal", "lost")
    arb.resume(0.2, "pedal")
    assert arb.snapshot() == {"left": H, "right": P}


def test_heartbeat_is_due_every_heartbeat_s():
    arb = AuthorityArbiter(AuthorityConfig())
    arb.mark_published(0.0)
    assert not arb.heartbeat_due(HEARTBEAT_S * 0.99) and arb.heartbeat_due(HEARTBEAT_S)


@pytest.mark.parametrize(("field", "value"), [("heartbeat_s", 1.5), ("debounce_s", 1.0)])
def test_an_authority_setting_that_defeats_the_operator_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        AuthorityConfig(**{field: value})


# --- the consumers' watch on /control_authority ---


def test_authority_watch_holds_before_first_message_and_after_its_timeout():
    w = AuthorityWatch(ARMS)
    assert set(w.current(0.0).values()) == {X}
    w.update({"left": P, "right": H}, now=10.0)
    assert w.current(10.0 + AUTHORITY_TIMEOUT) == {"left": P, "right": H}
    assert set(w.current(10.0 + AUTHORITY_TIMEOUT + 0.01).values()) == {X}
    with pytest.raises(ValueError, match="timeout_s"):
        AuthorityWatch(ARMS, timeout_s=0.0)


# --- the pedal supervisor: loss, reconnect, resume ---


def supervised(port: PedalPort, mode: str = "hold"):
    reader = PedalReader(
        PedalConfig(device="usb-Foot-event-kbd", keys={"left": "KEY_A", "right": "KEY_C"}),
        port.open,
    )
    arb = AuthorityArbiter(AuthorityConfig(mode=mode))
    return PedalSupervisor(reader, arb), arb


def test_a_pedal_that_cannot_be_opened_holds_every_arm_and_says_which_device():
    port = PedalPort()
    port.unplug()
    sup, arb = supervised(port)
    r = sup.tick(0.0)
    assert set(arb.snapshot().values()) == {X} and "usb-Foot-event-kbd" in r.error


def test_a_pedal_grabbed_by_another_program_holds_every_arm():
    port = PedalPort()
    port.device.grab_fails = True
    sup, arb = supervised(port)
    r = sup.tick(0.0)
    assert set(arb.snapshot().values()) == {X} and "grabbed" in r.error


def test_unplugged_mid_takeover_holds_at_once_and_resumes_only_after_a_release_period():
    port = PedalPort()
    sup, arb = supervised(port)
    sup.tick(0.0)
    port.device.press("KEY_A")
    sup.tick(0.01)
    sup.tick(0.01 + DEBOUNCE_S)
    assert arb.snapshot() == {"left": H, "right": P}
    port.unplug()
    r = sup.tick(0.1)  # the very next poll
    assert set(arb.snapshot().values()) == {X} and "HOLD" in r.error
    # back before reconnect_s: not even tried
    port.plug_in()
    port.device.down.add(30)  # KEY_A still held down by the operator's foot
    sup.tick(0.1 + RECONNECT_S * 0.5)
    assert port.opened == 1
    sup.tick(0.1 + RECONNECT_S)  # re-opened; the switch is still pressed
    assert port.opened == 2
    t = 0.1 + RECONNECT_S
    for _ in range(int(3 * RESUME_AFTER_S / TICK)):  # held down for 3 s: stays HOLD
        t += TICK
        sup.tick(t)
        assert set(arb.snapshot().values()) == {X}
    port.device.release("KEY_A")
    t += TICK
    sup.tick(t)  # released from here on
    released = t
    while t - released < RESUME_AFTER_S - TICK:
        t += TICK
        sup.tick(t)
        assert set(arb.snapshot().values()) == {X}, f"left HOLD {t - released:.2f} s after release"
    t = released + RESUME_AFTER_S
    assert "leaving HOLD" in sup.tick(t).info
    assert set(arb.snapshot().values()) == {P}


def test_a_press_during_the_release_period_starts_it_again():
    port = PedalPort()
    sup, arb = supervised(port)
    sup.tick(0.0)
    port.unplug()
    sup.tick(0.1)
    port.plug_in()
    sup.tick(0.1 + RECONNECT_S)
    t0 = 0.2 + RECONNECT_S
    sup.tick(t0)  # released since t0
    port.device.press("KEY_C")
    sup.tick(t0 + 0.8 * RESUME_AFTER_S)
    port.device.release("KEY_C")
    sup.tick(t0 + 0.9 * RESUME_AFTER_S)
    sup.tick(t0 + 1.5 * RESUME_AFTER_S)
    assert set(arb.snapshot().values()) == {X}
    sup.tick(t0 + 1.9 * RESUME_AFTER_S + TICK)
    assert set(arb.snapshot().values()) == {P}


# --- the mux ---

HOME = ArmTarget(np.array([0.24, 0.0, 0.16, 1, 0, 0, 0, 1, 0], float), 0.05)


def moved(dx: float) -> ArmTarget:
    t = HOME.targets.copy()
    t[0] += dx
    return ArmTarget(t, HOME.gripper)


def tick(mux, auth, policy=None, human=None):
    return mux.tick(
        {"left": auth, "right": X},
        {"left": policy},
        {"left": human},
        {"left": HOME, "right": HOME},
    )["left"]


def test_a_silent_policy_is_labelled_hold_after_exactly_its_timeout():
    mux = CommandMux(MuxConfig())
    assert tick(mux, P, policy=moved(0.01)).authority == P
    for k in range(1, POLICY_TIMEOUT_TICKS):
        out = tick(mux, P)
        assert out.authority == P and out.held, f"tick {k}"
    out = tick(mux, P)
    assert out.authority == X and out.model_index == -1
    assert out.target.targets[0] == pytest.approx(moved(0.01).targets[0])  # no jump


def test_a_takeover_blends_over_blend_steps_ticks_from_the_last_command():
    mux = CommandMux(MuxConfig())
    tick(mux, P, policy=HOME)
    human = moved(0.15)
    xs = [tick(mux, H, human=human).target.targets[0] for _ in range(BLEND_STEPS + 2)]
    step = 0.15 / BLEND_STEPS
    np.testing.assert_allclose(np.diff([HOME.targets[0], *xs[:BLEND_STEPS]]), step, atol=1e-12)
    assert xs[BLEND_STEPS - 1] == pytest.approx(human.targets[0])
    assert xs[-1] == pytest.approx(human.targets[0])


def test_hold_keeps_the_pose_of_the_moment_hold_began():
    mux = CommandMux(MuxConfig())
    tick(mux, P, policy=moved(0.02))
    for _ in range(5):
        out = tick(mux, X, policy=moved(0.2), human=moved(0.3))
        assert out.authority == X and out.target.targets[0] == pytest.approx(
            moved(0.02).targets[0]
        )


# --- the chunk executor ---


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_chunk_with_a_non_finite_row_never_reaches_the_mux(bad):
    ex = ChunkExecutor(ChunkExecutorConfig(horizon=4, execute_steps=2))
    actions = np.zeros((4, 20), np.float32)
    actions[1, 3] = bad
    assert not ex.load(actions, ex.begin_request(), model_index=1)
    assert ex.step() is None and ex.rejected_chunks == 1 and ex.should_request()


def test_a_chunk_requested_before_a_takeover_is_refused():
    ex = ChunkExecutor(ChunkExecutorConfig(horizon=4, execute_steps=2))
    ex.on_authority({"left": P, "right": P})
    token = ex.begin_request()
    ex.on_authority({"left": H, "right": P})
    ex.on_authority({"left": P, "right": P})
    assert not ex.load(np.zeros((4, 20), np.float32), token)


# --- camera freshness ---


def test_an_image_older_than_its_timeout_leaves_the_observation():
    inputs = LatestInputs()
    inputs.put("top", "frame", 1.0)
    assert inputs.fresh(1.0 + IMAGE_TIMEOUT) == {"top": "frame"}
    assert inputs.fresh(1.0 + IMAGE_TIMEOUT + 0.01) == {}
    assert inputs.newly_stale(1.0 + IMAGE_TIMEOUT + 0.01) == ["top"]
    assert inputs.newly_stale(2.0) == []  # reported once
    inputs.put("top", "frame2", 2.0)
    assert inputs.newly_stale(2.1) == [] and inputs.fresh(2.1) == {"top": "frame2"}


@pytest.mark.ros
def test_an_image_that_ages_while_its_request_waits_is_left_out_at_inference(ros):
    """The worker checks the images' arrival times again: a request queued behind a slow
    inference never reaches the policy with an image older than image_timeout_s."""
    from rclpy.parameter import Parameter

    from habc_control.policy_node import PolicyNode

    node = PolicyNode(context=ros, parameter_overrides=[Parameter("cameras", value=["top"])])
    seen = []
    node.policy.infer = lambda obs: seen.append(sorted(obs)) or {"actions": np.zeros((50, 20))}
    try:
        now = node.get_clock().now().nanoseconds * 1e-9
        obs = {"proprio": np.zeros(20, np.float32), "task": "", "images.top": np.zeros((4, 4, 3))}
        token = node.chunker.begin_request()
        node._infer(dict(obs), token, {"top": now - 0.1})  # arrived 0.1 s ago: kept
        node._infer(dict(obs), token, {"top": now - IMAGE_TIMEOUT - 0.05})  # aged: left out
        assert seen == [["images.top", "proprio", "task"], ["proprio", "task"]]
    finally:
        node.shutdown()
        node.destroy_node()
