"""Intervention model: the simulated human who watches a rollout and may take over.

Per tick it looks at the simulator (what a person at the rig sees) and decides, per arm, whether
it wants HUMAN authority. It never switches authority itself: the caller feeds its requests to the
same `AuthorityArbiter` a pedal drives, so takeovers follow the real rules (HOLD latch etc.).

Policy for one episode (all draws from the episode's seeded generator, all choices logged):
* failing = no new task milestone for `stall_ticks`, a recoverable slip (marker dropped after
  lifting, lid snapped shut while held), or a gripper closed on nothing for `miss_ticks`. An
  unrecoverable state (marker off the table) ends the episode; there is nothing to take over.
* on the first failure: with `intervene_prob` take over (after a reaction delay) the arm(s) whose
  sub-task is stuck, else let the episode run out (no later takeover).
* while in control, the expert drives those arms, continuing from the state it finds (a hand
  made at the takeover: no pause, a held marker or knob stays held, a regrasp from close by goes
  straight to the approach; expert.py); an arm still under POLICY that blocks progress
  later is taken too. After the first recovered milestone the operator hands the arms back with
  `hand_back_prob` (decided at takeover); it takes them again if the policy fails again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from habc_sim.config import OperatorConfig
from habc_sim.env import PouchEnv
from habc_sim.expert import ArmScript, hand_action, make_hand
from habc_sim.model import ARMS

MISS_GRIP = 0.01  # m: a commanded opening below this means "closing to grasp"


@dataclass
class OperatorEvent:
    tick: int
    kind: str  # failure_seen | decide_intervene | decide_let_run | take | hand_back
    arms: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "tick": self.tick,
            "kind": self.kind,
            "arms": list(self.arms),
            "reason": self.reason,
        }


@dataclass
class OperatorLog:
    events: list[OperatorEvent] = field(default_factory=list)
    decision: str = "none"  # none | intervene | let_run

    def to_dict(self) -> dict:
        return {"decision": self.decision, "events": [e.to_dict() for e in self.events]}


class InterventionModel:
    def __init__(self, env: PouchEnv, cfg: OperatorConfig, rng: np.random.Generator) -> None:
        self.env = env
        self.cfg = cfg
        self.rng = rng
        self.log = OperatorLog()
        self.wants: dict[str, bool] = {arm: False for arm in ARMS}
        self._hands: dict[str, ArmScript] = {}
        self._watch_from = 0  # stall timer origin
        self._slips_seen = 0
        self._snaps_seen = 0
        self._takeover_at: int | None = None
        self._takeover_arms: tuple[str, ...] = ()
        self._hand_back = False
        self._handed_back = False
        self._progress_at_take = 0
        self._miss = {arm: 0 for arm in ARMS}

    @property
    def in_control(self) -> tuple[str, ...]:
        return tuple(arm for arm in ARMS if self.wants[arm])

    def _missed_grasps(self) -> str:
        """A gripper closed on nothing for a while: a person sees that at once."""
        s, rig = self.env.state, self.env.rig
        closed_r = rig.gripper_target("right") < MISS_GRIP and rig.gripper_opening("right") < 0.01
        closed_l = rig.gripper_target("left") < MISS_GRIP and rig.gripper_opening("left") < 0.01
        miss_r = closed_r and not s.marker_held and not s.marker_in_pouch
        miss_l = closed_l and not s.knob_held and not s.marker_in_pouch
        self._miss["right"] = self._miss["right"] + 1 if miss_r else 0
        self._miss["left"] = self._miss["left"] + 1 if miss_l else 0
        if self._miss["right"] == self.cfg.miss_ticks:
            return "right gripper closed on nothing"
        if self._miss["left"] == self.cfg.miss_ticks:
            return "left gripper closed on nothing"
        return ""

    def _failing(self, tick: int) -> str:
        mon = self.env.monitor
        missed = self._missed_grasps()
        if mon.slips > self._slips_seen:
            return "marker slipped"
        if mon.lid_snaps > self._snaps_seen:
            return "lid snapped shut"
        if missed:
            return missed
        if tick - max(mon.last_progress_tick, self._watch_from) >= self.cfg.stall_ticks:
            return f"no progress for {self.cfg.stall_ticks} ticks"
        return ""

    def _stuck_arms(self) -> tuple[str, ...]:
        s = self.env.state
        if s.marker_in_pouch and not s.marker_held:
            return ("left",)
        if s.lid_open and s.knob_held:
            return ("right",)
        if s.marker_held:
            return ("left",)
        return ("left", "right")

    def observe(self, tick: int) -> dict[str, bool]:
        """Update from the simulator at `tick`; returns arm -> wants HUMAN authority."""
        if self.env.state is None or self.env.state.off_table:
            return dict(self.wants)
        reason = self._failing(tick)
        self._slips_seen = self.env.monitor.slips
        self._snaps_seen = self.env.monitor.lid_snaps
        if reason:
            self._watch_from = tick  # one report per stall window
        if self.log.decision == "none" and reason:
            self.log.events.append(OperatorEvent(tick, "failure_seen", (), reason))
            if self.rng.random() < self.cfg.intervene_prob:
                self.log.decision = "intervene"
                self._hand_back = bool(self.rng.random() < self.cfg.hand_back_prob)
                self.log.events.append(
                    OperatorEvent(tick, "decide_intervene", (), f"hand_back={self._hand_back}")
                )
                self._schedule(tick, self._stuck_arms())
            else:
                self.log.decision = "let_run"
                self.log.events.append(OperatorEvent(tick, "decide_let_run"))
        elif self.log.decision == "intervene" and reason:
            self.log.events.append(OperatorEvent(tick, "failure_seen", (), reason))
            stuck = tuple(a for a in self._stuck_arms() if not self.wants[a])
            if stuck and self._takeover_at is None:
                self._schedule(tick, stuck)
        if self._takeover_at is not None and tick >= self._takeover_at:
            for arm in self._takeover_arms:
                self.wants[arm] = True
                # A fresh hand starts from where the arm is now, not where it was last driven,
                # and carries on from there as a person grabbing the controls does.
                self._hands[arm] = make_hand(
                    arm, self.env, self.cfg.expert, self.rng, closed_loop=True, takeover=True
                )
            self.log.events.append(OperatorEvent(tick, "take", self._takeover_arms))
            self._progress_at_take = self.env.monitor.progress
            self._takeover_at = None
            self._watch_from = tick
        if (
            self._hand_back
            and not self._handed_back
            and any(self.wants.values())
            and self.env.monitor.progress > self._progress_at_take
        ):
            arms = self.in_control
            for arm in arms:
                self.wants[arm] = False
            self._handed_back = True
            self._watch_from = tick
            self.log.events.append(OperatorEvent(tick, "hand_back", arms, "milestone recovered"))
        return dict(self.wants)

    def _schedule(self, tick: int, arms: tuple[str, ...]) -> None:
        lo, hi = self.cfg.reaction_ticks
        self._takeover_at = tick + int(self.rng.integers(lo, hi + 1))
        self._takeover_arms = arms

    def act(self, arm: str) -> np.ndarray:
        """The operator's command for `arm` this tick (its EE or joint action slice)."""
        hand = self._hands.get(arm)
        if hand is None:
            # Demonstrations: the same person's hands, from the home pose.
            hand = self._hands[arm] = make_hand(
                arm, self.env, self.cfg.expert, self.rng, closed_loop=True
            )
        return hand_action(self.env, hand)


def label_outcome(env: PouchEnv) -> str:
    """The episode's outcome from simulator state."""
    return "success" if env.monitor.succeeded(env.cfg.task.settle_ticks) else "failure"
