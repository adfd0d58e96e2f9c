"""Scripted expert: the simulated operator's hands. Closed-loop waypoint scripts per arm.

Each arm reads the simulator state every tick, classifies the situation (e.g. marker lying /
held / in the pouch), and follows a short waypoint plan for that situation; a plan is rebuilt when
the situation has changed for a few ticks or the plan ran out (so a failed grasp is retried).
Because the plan depends only on the current state, the expert can take over any arm at any
moment of an episode, which is what the intervention model needs.

Skill (ExpertConfig): aim noise, pauses, and deliberately sloppy first grasps; all draws come from
the generator passed in, so a seed reproduces the demonstration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arx_x5_driver.sim.config import ExpertConfig
from arx_x5_driver.sim.env import HOME_TOOL, PouchEnv
from arx_x5_driver.sim.model import GRIPPER_STROKE
from arx_x5_driver.sim.rotations import rot6d_from_matrix, top_down_rotation

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


@dataclass(frozen=True)
class Waypoint:
    pos: np.ndarray  # world xyz of the tool point
    yaw: float  # closing direction angle in the table plane
    grip: float  # gripper opening
    hold: int = 0  # ticks to stay once reached
    speed: float = 1.0  # x ExpertConfig.speed


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


class ArmScript:
    """Shared machinery: follow a waypoint plan with speed limits, replan on situation change."""

    arm = ""

    def __init__(self, env: PouchEnv, cfg: ExpertConfig, rng: np.random.Generator) -> None:
        self.env = env
        self.cfg = cfg
        self.rng = rng
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
        if self.idx >= len(self.plan):
            return
        wp = self.plan[self.idx]
        dt = 1.0 / self.env.control_hz
        step = self.cfg.speed * wp.speed * dt
        delta = wp.pos - self.pos
        dist = float(np.linalg.norm(delta))
        self.pos = wp.pos.copy() if dist <= step else self.pos + delta * (step / dist)
        dyaw = _wrap(wp.yaw - self.yaw)
        self.yaw = _wrap(self.yaw + float(np.clip(dyaw, -YAW_SPEED * dt, YAW_SPEED * dt)))
        gstep = GRIPPER_SPEED * dt
        self.grip = float(self.grip + np.clip(wp.grip - self.grip, -gstep, gstep))
        reached = dist <= step and abs(dyaw) < 1e-3 and abs(wp.grip - self.grip) < 1e-6
        if reached:
            if self.held >= wp.hold:
                self.idx += 1
                self.held = 0
            else:
                self.held += 1


class MarkerHand(ArmScript):
    """Right arm: pick the marker up, wait for the open lid, drop it in, get out of the way."""

    arm = "right"

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
            plan += [
                Waypoint(
                    np.array([self.pos[0], self.pos[1], max(self.pos[2], 0.08)]),
                    self.yaw,
                    GRIP_OPEN,
                ),
                Waypoint(above, yaw, GRIP_OPEN),
                Waypoint(low, yaw, GRIP_OPEN, hold=2, speed=0.6),
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
            k = self.env.rig.knob_pos() + self.noise(self.cfg.pos_noise * 0.5)
            low = k + [0, 0, KNOB_GRASP_DZ]
            plan += [
                Waypoint(
                    np.array([self.pos[0], self.pos[1], max(self.pos[2], low[2] + 0.05)]),
                    self.yaw,
                    GRIP_OPEN,
                ),
                Waypoint(low + [0, 0, 0.05], yaw, 0.06),
                Waypoint(low, yaw, 0.06, hold=2, speed=0.6),
                Waypoint(low, yaw, GRIP_CLOSED, hold=self.cfg.grasp_close_ticks),
            ]
        elif label == "pull":
            plan.append(Waypoint(open_pos, yaw, GRIP_CLOSED, hold=1000, speed=0.6))
        elif label == "hold":
            plan.append(Waypoint(self.pos.copy(), self.yaw, GRIP_CLOSED, hold=1000))
        elif label == "close":
            plan += [
                Waypoint(closed_pos, yaw, GRIP_CLOSED, hold=2, speed=0.6),
                Waypoint(closed_pos, yaw, 0.05, hold=self.cfg.release_ticks),
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


def make_hand(arm: str, env: PouchEnv, cfg: ExpertConfig, rng: np.random.Generator) -> ArmScript:
    """The expert for one arm, starting from that arm's current pose."""
    return _HANDS[arm](env, cfg, rng)


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
    from arx_x5_driver.sim.rotations import matrix_from_rot6d

    res = env.ik.solve(action[:3], matrix_from_rot6d(action[3:9]), env.rig.joint_target(arm))
    q = res.q if res.ok else env.rig.joint_target(arm)
    return np.concatenate([q, action[9:10]])
