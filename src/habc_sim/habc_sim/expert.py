"""Scripted expert: the simulated operator's hands. Closed-loop waypoint scripts per arm.

Each arm reads the simulator state every tick, classifies the situation (e.g. marker lying /
held / in the pouch), and follows a short waypoint plan for that situation; a plan is rebuilt when
the situation has changed for a few ticks or the plan ran out (so a failed grasp is retried).
Because the plan depends only on the current state, the expert can take over any arm at any
moment of an episode, which is what the intervention model needs.

Skill (ExpertConfig): aim noise, pauses, and deliberately sloppy first grasps; all draws come from
the generator passed in, so a seed reproduces the demonstration.

The operator's hands (`closed_loop`) also follow the object they are reaching for every tick
until the fingers close, and never open on an object they hold except to let it go where it
belongs. A hand made at a takeover (`takeover`) continues from the state it finds, as a person
who grabs the controls does: no pause in its first second, a held object stays held, and a grasp
next to the object goes straight to the approach, opening on the way rather than first.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from habc_core.rotations import matrix_from_rot6d, rot6d_from_matrix
from habc_sim.config import ExpertConfig
from habc_sim.env import HOME_TOOL, PouchEnv
from habc_sim.model import GRIPPER_STROKE
from habc_sim.rotations import top_down_rotation

GRIP_OPEN = GRIPPER_STROKE
GRIP_CLOSED = 0.0
GRIPPER_SPEED = 0.3  # m/s, SDK RobotConfig.gripper_vel_max
YAW_SPEED = 3.0  # rad/s of the tool about the vertical
SWITCH_TICKS = 6  # a new situation must persist this long before the plan changes
HOVER_Z = 0.12
MARKER_GRASP_DZ = 0.005  # tool point above the marker axis: pad tips stay off the table
KNOB_GRASP_DZ = 0.004
DROP_Z = 0.072  # tool height (= marker axis height) when the marker is let go over the pouch
PULL_FRACTION = 0.97  # of the lid travel: stop short of the end stop
# A person who just took over acts at once; pauses come back after this (1 s at 30 Hz).
TAKEOVER_FOCUS_TICKS = 30
NEAR_XY = 0.06  # tool this close (table plane) to its object: regrasp without backing off
PRE_GRASP_DZ = 0.03  # above the grasp height: pad bottoms clear the marker's top
# Opening for a regrasp from close by: the marker's 18 mm plus the aim error (4 mm std) and a
# sloppy grasp's 13 mm offset, with room to spare; a full stroke is 88 mm.
REGRASP_OPEN = 0.05


@dataclass(frozen=True)
class Waypoint:
    pos: np.ndarray  # world xyz of the tool point
    yaw: float  # closing direction angle in the table plane
    grip: float  # gripper opening
    hold: int = 0  # ticks to stay once reached
    speed: float = 1.0  # x ExpertConfig.speed
    track: bool = False  # closed-loop hands: follow the object's motion since the plan was made
    release: bool = False  # the only waypoint that may open a hand holding its object


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


class ArmScript:
    """Shared machinery: follow a waypoint plan with speed limits, replan on situation change."""

    arm = ""

    def __init__(
        self,
        env: PouchEnv,
        cfg: ExpertConfig,
        rng: np.random.Generator,
        *,
        closed_loop: bool = False,
        takeover: bool = False,
    ) -> None:
        self.env = env
        self.cfg = cfg
        self.rng = rng
        self.closed_loop = closed_loop
        self.takeover = takeover
        self.born = env.tick
        xyz, rot = env.rig.ee_pose(self.arm)
        self.pos = xyz + env.rig.base_pos[self.arm]
        self.yaw = float(np.arctan2(rot[1, 1], rot[0, 1]))
        self.grip = env.rig.gripper_target(self.arm)
        self.label = ""
        self.pending = ""
        self.pending_ticks = 0
        self.plan: list[Waypoint] = []
        self.idx = 0
        self.held = 0
        self.attempts: dict[str, int] = {}
        self.log: list[tuple[int, str]] = []

    # --- to override ---
    def situation(self) -> str:
        raise NotImplementedError

    def make_plan(self, label: str) -> list[Waypoint]:
        raise NotImplementedError

    def holding(self) -> bool:
        """This hand holds its object (then it opens only at a `release` waypoint)."""
        return False

    def tracked(self, wp: Waypoint) -> Waypoint:
        """`wp` moved with its object since the plan was made (identity: nothing to follow)."""
        return wp

    # --- helpers ---
    def natural_yaw(self, yaw: float, at: np.ndarray) -> float:
        """The gripper is symmetric: pick yaw or yaw + pi, whichever keeps joint 6 near zero."""
        rel = at - self.env.rig.base_pos[self.arm]
        ref = np.arctan2(rel[1], rel[0]) + np.pi / 2
        return yaw if abs(_wrap(yaw - ref)) <= np.pi / 2 else _wrap(yaw + np.pi)

    def noise(self, scale: float, n: int = 3) -> np.ndarray:
        out = self.rng.normal(0.0, scale, n) if scale > 0 else np.zeros(n)
        if n == 3:
            out[2] *= 0.3  # height errors are smaller: the table is a reference
        return out

    def maybe_hesitate(self) -> list[Waypoint]:
        if self.takeover and self.env.tick - self.born < TAKEOVER_FOCUS_TICKS:
            return []
        if self.rng.random() < self.cfg.hesitation_prob:
            lo, hi = self.cfg.hesitation_ticks
            ticks = int(self.rng.integers(lo, hi + 1))
            return [Waypoint(self.pos.copy(), self.yaw, self.grip, ticks)]
        return []

    def home(self, grip: float = GRIP_OPEN) -> Waypoint:
        base = self.env.rig.base_pos[self.arm]
        pos = base + HOME_TOOL
        return Waypoint(pos, self.natural_yaw(np.pi / 2, pos), grip)

    # --- one tick ---
    def act(self) -> np.ndarray:
        """(10,) EE action in this arm's base frame: xyz, 6-D rotation, gripper."""
        label = self.situation()
        if label != self.label:
            self.pending_ticks = self.pending_ticks + 1 if label == self.pending else 1
            self.pending = label
            if not self.label or self.pending_ticks >= SWITCH_TICKS:
                self._replan(label)
        else:
            self.pending, self.pending_ticks = "", 0
        if self.idx >= len(self.plan):
            self._replan(self.label)
        self._advance()
        rot = top_down_rotation(np.array([np.cos(self.yaw), np.sin(self.yaw)]))
        xyz = self.pos - self.env.rig.base_pos[self.arm]
        return np.concatenate([xyz, rot6d_from_matrix(rot), [self.grip]])

    def _replan(self, label: str) -> None:
        self.attempts[label] = self.attempts.get(label, 0) + 1
        self.label = label
        self.pending, self.pending_ticks = "", 0
        self.plan = self.make_plan(label)
        self.idx = 0
        self.held = 0
        self.log.append((self.env.tick, label))

    def _advance(self) -> None:
        if self.takeover:
            # A person does not stop at a waypoint that is already where the hand is.
            while self.idx + 1 < len(self.plan) and self._already_there(self.plan[self.idx]):
                self.idx += 1
        if self.idx >= len(self.plan):
            return
        wp = self.plan[self.idx]
        following = self.closed_loop and wp.track
        if following:
            wp = self.tracked(wp)
        dt = 1.0 / self.env.control_hz
        step = self.cfg.speed * wp.speed * dt
        delta = wp.pos - self.pos
        dist = float(np.linalg.norm(delta))
        self.pos = wp.pos.copy() if dist <= step else self.pos + delta * (step / dist)
        dyaw = _wrap(wp.yaw - self.yaw)
        self.yaw = _wrap(self.yaw + float(np.clip(dyaw, -YAW_SPEED * dt, YAW_SPEED * dt)))
        gstep = GRIPPER_SPEED * dt
        goal_grip = wp.grip
        if self.closed_loop and self.holding() and not wp.release:
            goal_grip = min(goal_grip, self.grip)  # a held object is let go only where it belongs
        self.grip = float(self.grip + np.clip(goal_grip - self.grip, -gstep, gstep))
        reached = dist <= step and abs(dyaw) < 1e-3 and abs(goal_grip - self.grip) < 1e-6
        if reached:
            if self.held >= wp.hold:
                self.idx += 1
                self.held = 0
                if following and self.idx < len(self.plan) and not self.plan[self.idx].track:
                    # The fingers close where the object is now: the rest of the plan moves too.
                    rest = [self.tracked(w) for w in self.plan[self.idx :]]
                    self.plan = self.plan[: self.idx] + rest
            else:
                self.held += 1

    def _already_there(self, wp: Waypoint) -> bool:
        if wp.hold or wp.track:
            return False
        return (
            float(np.linalg.norm(wp.pos - self.pos)) < 1e-6
            and abs(_wrap(wp.yaw - self.yaw)) < 1e-3
            and abs(wp.grip - self.grip) < 1e-6
        )


class MarkerHand(ArmScript):
    """Right arm: pick the marker up, wait for the open lid, drop it in, get out of the way."""

    arm = "right"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ref_xy = np.zeros(2)  # marker xy and axis angle when the pick plan was made
        self._ref_angle = 0.0

    def holding(self) -> bool:
        return bool(self.env.state.marker_held)

    def _marker_angle(self) -> float:
        axis = self.env.rig.marker_axis()
        return float(np.arctan2(axis[1], axis[0]))

    def tracked(self, wp: Waypoint) -> Waypoint:
        # Rigid motion of the marker in the table plane since the plan; its axis has no
        # direction, so a turn is taken modulo pi.
        turn = float((self._marker_angle() - self._ref_angle + np.pi / 2) % np.pi - np.pi / 2)
        c, s = np.cos(turn), np.sin(turn)
        rel = wp.pos[:2] - self._ref_xy
        xy = self.env.rig.marker_pos()[:2] + np.array(
            [c * rel[0] - s * rel[1], s * rel[0] + c * rel[1]]
        )
        return dataclasses.replace(
            wp, pos=np.array([xy[0], xy[1], wp.pos[2]]), yaw=_wrap(wp.yaw + turn)
        )

    def situation(self) -> str:
        s = self.env.state
        if s.marker_in_pouch and not s.marker_held:
            return "done"
        if s.marker_held:
            return "carry" if s.lid_open else "carry_wait"
        if self._over_pouch():
            return "nudge"  # lying across the rim or tilted in the mouth: push it in
        return "pick"

    def _over_pouch(self) -> bool:
        rig, sc = self.env.rig, self.env.cfg.scene
        ppos, prot = rig.pouch_pose()
        local = prot.T @ (rig.marker_pos() - ppos)
        return (
            abs(local[0]) < sc.pouch_inner_length / 2 + 0.01
            and abs(local[1]) < sc.pouch_inner_width / 2 + 0.01
            and local[2] > 0.005 + sc.marker_radius + 0.006
        )

    def _drop_point(self) -> tuple[np.ndarray, float]:
        ppos, prot = self.env.rig.pouch_pose()
        sc = self.env.cfg.scene
        # Centre of the opening the lid leaves when pulled open (towards the pouch's -x end):
        # from the inner -x wall to the lid's trailing edge (lid half length = L/2 + wall).
        half = sc.pouch_inner_length / 2
        lid_edge = -(half + 0.005) + sc.lid_travel * PULL_FRACTION
        local_x = (-half + lid_edge) / 2
        centre = ppos + prot[:, 0] * local_x
        close_dir = prot[:, 1]  # fingers across the pouch: the marker ends up along its axis
        return centre, float(np.arctan2(close_dir[1], close_dir[0]))

    def _regrasp_approach(self, low: np.ndarray, yaw: float) -> list[Waypoint]:
        """From next to the marker: up just clear of it and over the grasp, opening on the way
        only as far as the grasp needs (a wider opening is kept), then down."""
        grip = max(self.grip, REGRASP_OPEN)
        pre = low + np.array([0.0, 0.0, PRE_GRASP_DZ])
        out = []
        if self.pos[2] < pre[2]:  # beside the marker: rise before moving across it
            out.append(Waypoint(np.array([self.pos[0], self.pos[1], pre[2]]), self.yaw, grip))
        return out + [
            Waypoint(pre, yaw, grip, track=True),
            Waypoint(low, yaw, grip, hold=2, speed=0.6, track=True),
        ]

    def make_plan(self, label: str) -> list[Waypoint]:
        rig = self.env.rig
        plan = self.maybe_hesitate()
        if label == "pick":
            m = rig.marker_pos()
            axis = rig.marker_axis()
            yaw = float(np.arctan2(axis[1], axis[0])) + np.pi / 2
            yaw += float(self.rng.normal(0.0, self.cfg.yaw_noise)) if self.cfg.yaw_noise else 0.0
            aim = m + self.noise(self.cfg.pos_noise)
            if self.attempts.get("pick", 0) == 1 and self.rng.random() < self.cfg.regrasp_prob:
                # A sloppy first grasp: off-centre across the marker; usually slips and is redone.
                aim += np.array([np.cos(yaw), np.sin(yaw), 0.0]) * 0.013
            yaw = self.natural_yaw(yaw, aim)
            # At the marker's height: it may lie on the rim or the lid after a bad drop.
            grasp_z = max(float(m[2]), self.env.cfg.scene.marker_radius) + MARKER_GRASP_DZ
            above = np.array([aim[0], aim[1], HOVER_Z - 0.03])
            low = np.array([aim[0], aim[1], grasp_z])
            self._ref_xy, self._ref_angle = m[:2].copy(), self._marker_angle()
            near = (
                float(np.linalg.norm(self.pos[:2] - aim[:2])) < NEAR_XY
                and self.pos[2] < HOVER_Z + 0.01
            )
            if self.takeover and near:
                plan += self._regrasp_approach(low, yaw)
            else:
                plan += [
                    Waypoint(
                        np.array([self.pos[0], self.pos[1], max(self.pos[2], 0.08)]),
                        self.yaw,
                        GRIP_OPEN,
                    ),
                    Waypoint(above, yaw, GRIP_OPEN, track=True),
                    Waypoint(low, yaw, GRIP_OPEN, hold=2, speed=0.6, track=True),
                ]
            plan += [
                Waypoint(low, yaw, GRIP_CLOSED, hold=self.cfg.grasp_close_ticks),
                Waypoint(np.array([aim[0], aim[1], HOVER_Z]), yaw, GRIP_CLOSED, speed=0.7),
            ]
        elif label in ("carry", "carry_wait"):
            centre, yaw = self._drop_point()
            centre = centre + self.noise(self.cfg.pos_noise)
            yaw = self.natural_yaw(yaw, centre)
            lift = np.array([self.pos[0], self.pos[1], HOVER_Z])
            plan.append(Waypoint(lift, self.yaw, GRIP_CLOSED, speed=0.7))
            if label == "carry_wait":
                plan.append(Waypoint(centre + [0, 0, HOVER_Z + 0.02], yaw, GRIP_CLOSED, hold=10))
            else:
                plan += [
                    Waypoint(np.array([centre[0], centre[1], HOVER_Z]), yaw, GRIP_CLOSED),
                    Waypoint(
                        np.array([centre[0], centre[1], DROP_Z]),
                        yaw,
                        GRIP_CLOSED,
                        hold=2,
                        speed=0.5,
                    ),
                    Waypoint(
                        np.array([centre[0], centre[1], DROP_Z]),
                        yaw,
                        0.04,
                        hold=self.cfg.release_ticks,
                        release=True,
                    ),
                    Waypoint(np.array([centre[0], centre[1], HOVER_Z + 0.02]), yaw, 0.04),
                ]
        elif label == "nudge":
            # Press the marker's higher end down with the closed fingers, fingers across the
            # pouch so they fit in its mouth; then back up and look again.
            m, axis = rig.marker_pos(), rig.marker_axis()
            half = self.env.cfg.scene.marker_half_length
            ends = [m + axis * half * 0.7, m - axis * half * 0.7]
            high = max(ends, key=lambda e: e[2])
            _, yaw = self._drop_point()
            yaw = self.natural_yaw(yaw, high)
            rim = 0.005 + self.env.cfg.scene.pouch_wall_height
            plan += [
                Waypoint(
                    np.array([self.pos[0], self.pos[1], max(self.pos[2], HOVER_Z)]),
                    self.yaw,
                    GRIP_CLOSED,
                ),
                Waypoint(np.array([high[0], high[1], HOVER_Z]), yaw, GRIP_CLOSED),
                Waypoint(
                    np.array([high[0], high[1], rim - 0.012]), yaw, GRIP_CLOSED, hold=3, speed=0.5
                ),
                Waypoint(np.array([high[0], high[1], HOVER_Z]), yaw, GRIP_CLOSED),
            ]
        else:  # done
            plan.append(
                Waypoint(np.array([self.pos[0], self.pos[1], HOVER_Z + 0.02]), self.yaw, 0.04)
            )
            plan.append(self.home())
        return plan


class LidHand(ArmScript):
    """Left arm: grab the lid's knob, slide the lid open and hold it, close it when the marker
    is in and the right hand is clear."""

    arm = "left"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ref_knob = np.zeros(3)  # knob position when the grab plan was made

    def holding(self) -> bool:
        return bool(self.env.state.knob_held)

    def tracked(self, wp: Waypoint) -> Waypoint:
        # The knob only slides with the lid (a released lid springs shut): a translation.
        return dataclasses.replace(wp, pos=wp.pos + (self.env.rig.knob_pos() - self._ref_knob))

    def right_clear(self) -> bool:
        rig = self.env.rig
        xyz, _ = rig.ee_pose("right")
        tool = xyz + rig.base_pos["right"]
        ppos, _ = rig.pouch_pose()
        return tool[2] > 0.1 or float(np.linalg.norm(tool[:2] - ppos[:2])) > 0.15

    def situation(self) -> str:
        s = self.env.state
        if s.marker_in_pouch and not s.marker_held:
            if s.lid_closed and not s.knob_held:
                return "done"
            if s.knob_held:
                return "close" if self.right_clear() else "hold"
            return "done" if s.lid_closed else "close_push"
        return "pull" if s.knob_held else "grab"

    def _knob_closed_pos(self) -> tuple[np.ndarray, np.ndarray]:
        rig = self.env.rig
        _, prot = rig.pouch_pose()
        axis = prot[:, 0]
        return rig.knob_pos() - axis * rig.lid_opening(), axis

    def make_plan(self, label: str) -> list[Waypoint]:
        plan = self.maybe_hesitate()
        knob0, axis = self._knob_closed_pos()
        yaw = self.natural_yaw(float(np.arctan2(axis[1], axis[0])), knob0)
        travel = self.env.cfg.scene.lid_travel
        open_pos = knob0 + axis * travel * PULL_FRACTION + [0, 0, KNOB_GRASP_DZ]
        closed_pos = knob0 + [0, 0, KNOB_GRASP_DZ]
        if label in ("grab", "close_push"):
            self._ref_knob = self.env.rig.knob_pos()
            k = self._ref_knob + self.noise(self.cfg.pos_noise * 0.5)
            low = k + [0, 0, KNOB_GRASP_DZ]
            near = (
                float(np.linalg.norm(self.pos[:2] - low[:2])) < NEAR_XY
                and self.pos[2] < low[2] + 0.08
            )
            if not (self.takeover and near):
                # From afar the hand backs off and opens wide first; from next to the knob a
                # person who takes over opens on the way down instead.
                plan.append(
                    Waypoint(
                        np.array([self.pos[0], self.pos[1], max(self.pos[2], low[2] + 0.05)]),
                        self.yaw,
                        GRIP_OPEN,
                    )
                )
            elif self.pos[2] < low[2] + 0.05:
                plan.append(
                    Waypoint(np.array([self.pos[0], self.pos[1], low[2] + 0.05]), self.yaw, 0.06)
                )
            plan += [
                Waypoint(low + [0, 0, 0.05], yaw, 0.06, track=True),
                Waypoint(low, yaw, 0.06, hold=2, speed=0.6, track=True),
                Waypoint(low, yaw, GRIP_CLOSED, hold=self.cfg.grasp_close_ticks),
            ]
        elif label == "pull":
            plan.append(Waypoint(open_pos, yaw, GRIP_CLOSED, hold=1000, speed=0.6))
        elif label == "hold":
            plan.append(Waypoint(self.pos.copy(), self.yaw, GRIP_CLOSED, hold=1000))
        elif label == "close":
            plan += [
                Waypoint(closed_pos, yaw, GRIP_CLOSED, hold=2, speed=0.6),
                Waypoint(closed_pos, yaw, 0.05, hold=self.cfg.release_ticks, release=True),
                Waypoint(closed_pos + [0, 0, 0.06], yaw, 0.05),
                self.home(),
            ]
        else:  # done
            plan += [
                Waypoint(
                    np.array([self.pos[0], self.pos[1], max(self.pos[2], 0.12)]), self.yaw, 0.05
                ),
                self.home(),
            ]
        return plan


_HANDS: dict[str, type[ArmScript]] = {"left": LidHand, "right": MarkerHand}


def make_hand(
    arm: str,
    env: PouchEnv,
    cfg: ExpertConfig,
    rng: np.random.Generator,
    *,
    closed_loop: bool = False,
    takeover: bool = False,
) -> ArmScript:
    """The expert for one arm, starting from that arm's current pose. `closed_loop`: the
    operator's hands (follow the object, keep a held one); `takeover`: made at a takeover, it
    continues from the state it finds (module docstring)."""
    return _HANDS[arm](env, cfg, rng, closed_loop=closed_loop, takeover=takeover)


def hand_action(env: PouchEnv, hand: ArmScript) -> np.ndarray:
    """One tick of `hand`, in the env's action space (EE, or joints through IK)."""
    action = hand.act()
    if env.action_space == "joint":
        return _ee_to_joint(env, hand.arm, action)
    return action


class ScriptedExpert:
    """Both hands; `act()` gives the 20-D EE action (left then right) for the env's tick."""

    def __init__(self, env: PouchEnv, cfg: ExpertConfig, rng: np.random.Generator) -> None:
        self.env = env
        self.hands = {arm: make_hand(arm, env, cfg, rng) for arm in ("left", "right")}

    def act_arm(self, arm: str) -> np.ndarray:
        return hand_action(self.env, self.hands[arm])

    def act(self) -> np.ndarray:
        return np.concatenate([self.act_arm(arm) for arm in ("left", "right")])


def _ee_to_joint(env: PouchEnv, arm: str, action: np.ndarray) -> np.ndarray:
    res = env.ik.solve(action[:3], matrix_from_rot6d(action[3:9]), env.rig.joint_target(arm))
    q = res.q if res.ok else env.rig.joint_target(arm)
    return np.concatenate([q, action[9:10]])
