"""The simulated operator takes over like a person: it continues from the state it finds."""

import numpy as np
import pytest

from habc_core.rotations import rot6d_from_matrix
from habc_sim.config import ExpertConfig, SimConfig
from habc_sim.env import PouchEnv
from habc_sim.expert import (
    DROP_Z,
    MARKER_GRASP_DZ,
    PRE_GRASP_DZ,
    REGRASP_OPEN,
    ArmScript,
    make_hand,
)
from habc_sim.model import ARMS
from habc_sim.operator import label_outcome
from habc_sim.rotations import top_down_rotation

SKILL = ExpertConfig()


@pytest.fixture(scope="module")
def env() -> PouchEnv:
    return PouchEnv(SimConfig())


def _tool(env: PouchEnv, arm: str) -> np.ndarray:
    xyz, _ = env.rig.ee_pose(arm)
    return xyz + env.rig.base_pos[arm]


def _hold(env: PouchEnv, arm: str) -> np.ndarray:
    cmd = env.last_command[arm]
    return np.append(cmd.targets, cmd.gripper)


def _step(env: PouchEnv, parts: dict[str, np.ndarray]) -> bool:
    _, _, term, trunc, _ = env.step(np.concatenate([parts[a] for a in ARMS]))
    return term or trunc


def _drive_right(env: PouchEnv, goal: np.ndarray, yaw: float, grip: float, ticks: int) -> None:
    """Move the right tool point in a straight line to world `goal` (a policy's motion)."""
    start = _tool(env, "right")
    rot = rot6d_from_matrix(top_down_rotation(np.array([np.cos(yaw), np.sin(yaw)])))
    for k in range(1, ticks + 1):
        p = start + (goal - start) * k / ticks - env.rig.base_pos["right"]
        _step(env, {"left": _hold(env, "left"), "right": np.concatenate([p, rot, [grip]])})
    for _ in range(10):  # settle
        _step(env, {"left": _hold(env, "left"), "right": _hold(env, "right")})


def _run(env: PouchEnv, hands: dict[str, ArmScript], ticks: int, watch=None) -> bool:
    """Both arms under `hands` for up to `ticks`; `watch(env, hands, actions)` each tick."""
    for _ in range(ticks):
        actions = {arm: hands[arm].act() for arm in ARMS}
        if watch is not None:
            watch(env, hands, actions)
        if _step(env, actions):
            return True
    return False


def _missed_grasp(env: PouchEnv, seed: int) -> None:
    """A policy's typical failure: gripper closed on nothing beside the lying marker."""
    env.reset(seed)
    m, axis = env.rig.marker_pos(), env.rig.marker_axis()
    across = np.array([-axis[1], axis[0], 0.0])
    beside = m + across * 0.025
    # The wrist turned the way the expert's would (joint 6 near zero: always reachable).
    hand = make_hand("right", env, SKILL, np.random.default_rng(0))
    yaw = hand.natural_yaw(float(np.arctan2(across[1], across[0])), beside)
    _drive_right(env, beside + [0, 0, 0.08], yaw, 0.0, 30)
    _drive_right(env, beside + [0, 0, MARKER_GRASP_DZ], yaw, 0.0, 20)
    assert np.linalg.norm(_tool(env, "right") - beside - [0, 0, MARKER_GRASP_DZ]) < 0.01
    assert env.state.marker_on_table and not env.state.marker_held
    assert env.rig.gripper_opening("right") < 0.01


def _takeover(env: PouchEnv, seed: int, skill: ExpertConfig = SKILL) -> dict[str, ArmScript]:
    rng = np.random.default_rng(seed)
    return {a: make_hand(a, env, skill, rng, closed_loop=True, takeover=True) for a in ARMS}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_takeover_of_a_missed_grasp_regrasps_from_there_and_completes(env: PouchEnv, seed):
    _missed_grasp(env, seed)
    hands = _takeover(env, seed)
    z0 = _tool(env, "right")[2]
    trace: list[tuple[float, float, bool]] = []  # tool z, commanded grip, marker held

    def watch(env, hands, actions):
        trace.append((_tool(env, "right")[2], float(actions["right"][9]), env.state.marker_held))

    done = _run(env, hands, env.cfg.task.t_max, watch)
    assert done and label_outcome(env) == "success"
    assert env.tick < env.cfg.task.t_max
    first_held = next(i for i, (_z, _g, held) in enumerate(trace) if held)
    before = trace[:first_held]
    # No backing off to 8 cm: it rises just clear of the marker and goes for the grasp...
    grasp_z = env.cfg.scene.marker_radius + MARKER_GRASP_DZ
    assert max(z for z, _g, _h in before) < grasp_z + PRE_GRASP_DZ + 0.01
    assert max(z for z, _g, _h in before) < z0 + PRE_GRASP_DZ + 0.01
    # ...opening only as far as the grasp needs, and while moving (not first, then moving).
    assert max(g for _z, g, _h in before) <= REGRASP_OPEN + 1e-9
    assert trace[1][1] > trace[0][1] and abs(trace[3][0] - trace[0][0]) > 0.003


def test_takeover_while_the_marker_is_held_never_opens_before_the_drop(env: PouchEnv):
    env.reset(3)
    demo = {a: make_hand(a, env, SKILL, np.random.default_rng(3), closed_loop=True) for a in ARMS}
    for _ in range(env.cfg.task.t_max):
        if env.state.marker_lifted:
            break
        _step(env, {a: demo[a].act() for a in ARMS})
    assert env.state.marker_held
    grip0 = env.rig.gripper_target("right")
    hands = _takeover(env, 3, ExpertConfig(hesitation_prob=0.0))
    # Force the worst plan on it: a pick, which starts by opening the gripper wide.
    hands["right"]._replan("pick")
    trace: list[tuple[float, bool, float]] = []  # commanded grip, held, tool z

    def watch(env, hands, actions):
        trace.append((float(actions["right"][9]), env.state.marker_held, _tool(env, "right")[2]))

    assert _run(env, hands, env.cfg.task.t_max - env.tick, watch)
    assert label_outcome(env) == "success" and env.monitor.slips == 0
    last = grip0
    for grip, held, z in trace:
        if held and grip > last + 1e-9:
            # Opening while holding only at the drop: tool down at the drop height.
            assert abs(z - DROP_Z) < 0.01, (grip, last, z)
        last = grip
    assert max(g for g, _h, _z in trace[:20]) <= grip0 + 1e-9  # the forced pick never opened


def test_takeover_while_the_knob_is_held_keeps_it_and_pulls_on(env: PouchEnv):
    env.reset(5)
    demo = {a: make_hand(a, env, SKILL, np.random.default_rng(5), closed_loop=True) for a in ARMS}
    for _ in range(env.cfg.task.t_max):
        if env.state.knob_held and env.state.lid_opening > 0.05:
            break
        _step(env, {a: demo[a].act() for a in ARMS})
    assert env.state.knob_held and not env.state.lid_open
    opening = env.state.lid_opening
    pausing = ExpertConfig(hesitation_prob=1.0, hesitation_ticks=(12, 12))
    hands = _takeover(env, 5, pausing)
    for _ in range(20):
        _step(env, {"left": hands["left"].act(), "right": _hold(env, "right")})
        assert env.state.knob_held and env.rig.gripper_target("left") < 0.01
        if not env.state.lid_open:
            assert env.state.lid_opening > opening  # no pause: the lid keeps sliding open
        opening = env.state.lid_opening
    assert env.state.lid_open and env.state.knob_held


@pytest.mark.parametrize("arm", ARMS)
def test_no_pause_in_the_first_ticks_of_a_takeover(env: PouchEnv, arm: str):
    skill = ExpertConfig(hesitation_prob=1.0, hesitation_ticks=(12, 12))  # always pauses

    def first_moves(takeover: bool) -> list[float]:
        env.reset(0)
        hand = make_hand(
            arm, env, skill, np.random.default_rng(0), closed_loop=True, takeover=takeover
        )
        poses = [hand.pos.copy()]
        for _ in range(8):
            hand.act()
            poses.append(hand.pos.copy())
            env.step(None)
        return [float(np.linalg.norm(b - a)) for a, b in zip(poses, poses[1:], strict=False)]

    assert min(first_moves(takeover=True)) > 1e-4  # moving from the first tick on
    assert max(first_moves(takeover=False)) == 0.0  # a demonstration's hand does pause


def test_pick_target_follows_a_marker_that_moves_during_the_approach(env: PouchEnv):
    def grasp_after_push(closed_loop: bool) -> tuple[bool, float]:
        env.reset(2)
        skill = ExpertConfig(pos_noise=0.0, yaw_noise=0.0, hesitation_prob=0.0, regrasp_prob=0.0)
        rng = np.random.default_rng(2)
        hands = {a: make_hand(a, env, skill, rng, closed_loop=closed_loop) for a in ARMS}
        rig = env.rig
        adr = rig._marker_qadr
        axis = rig.marker_axis()
        across = np.array([-axis[1], axis[0]]) * np.sign(-axis[0])  # away from the pouch
        for t in range(120):
            if 3 <= t < 23:  # rolled 5.5 cm across its axis while the hand comes in
                rig.data.qpos[adr : adr + 2] += across * 0.00275
                rig.data.qvel[rig._marker_vadr : rig._marker_vadr + 6] = 0.0
            _step(env, {a: hands[a].act() for a in ARMS})
            if env.state.marker_lifted:
                break
        miss = float(np.linalg.norm(_tool(env, "right")[:2] - rig.marker_pos()[:2]))
        first_try = hands["right"].attempts.get("pick") == 1
        return bool(env.state.marker_lifted) and first_try, miss

    lifted, miss = grasp_after_push(closed_loop=True)
    assert lifted and miss < 0.01
    lifted_open_loop, _ = grasp_after_push(closed_loop=False)
    assert not lifted_open_loop  # the first plan grasps where the marker was, and misses
