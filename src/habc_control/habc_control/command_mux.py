"""Command mux: picks each arm's executed command from the policy, the human or a hold pose.

Pure Python (no rclpy). One `tick()` per control tick::

    mux = CommandMux(MuxConfig(arms=("left", "right"), action_space="ee", blend_steps=15))
    out = mux.tick(arbiter.snapshot(), policy={"left": t1, ...}, human={...}, measured={...},
                   model_index=k)
    # out[arm] is a MuxOutput (send it and record it: it is the executed action) or None when
    # nothing is known about the arm yet (send nothing; the driver's watchdog holds it).

Rules per arm:
* POLICY -> the policy target; if the policy has nothing this tick (waiting for a chunk), the last
  output is repeated (`held=True`). After `policy_timeout_ticks` ticks in a row without a policy
  target (policy stalled, crashed or gone) the repeated target is labelled HOLD instead: a
  stale target is never passed off as the policy's, and the arm driver holds the arm.
* HUMAN  -> the human target; the first `blend_steps` ticks after switching to HUMAN interpolate
  from the last executed command (or the measured pose) to the human target, so the arm never
  jumps to where the leader/operator happens to be.
* HOLD   -> the pose at the moment HOLD began, repeated.

`ActionLayout` maps a policy action vector (D,) to per-arm targets and back:
`ee`: per arm xyz + 6-D rotation + gripper (10); `joint`: per arm 6 joints + gripper (7).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from habc_control.authority import Authority, blend_pose
from habc_core.action_layout import ActionLayout, ArmTarget

# A policy silent this long under POLICY is stalled: well above the sim presets' inference
# (23-39 ms) with prefetch, short enough that a dead policy never looks like one that acts.
POLICY_TIMEOUT_S = 0.5


def policy_timeout_ticks(timeout_s: float, control_hz: float) -> int:
    """`policy_timeout_s` (the mux node's parameter) as control ticks, at least 1."""
    if not timeout_s > 0:
        raise ValueError(f"policy_timeout_s: must be > 0, got {timeout_s!r}")
    return max(1, math.ceil(timeout_s * control_hz - 1e-9))


@dataclass(frozen=True)
class MuxConfig:
    arms: tuple[str, ...] = ("left", "right")
    action_space: str = "ee"
    blend_steps: int = 15  # ticks of interpolation after switching to HUMAN (0.5 s at 30 Hz)
    # Ticks without a fresh policy target before the mux calls the policy stalled and holds
    # (POLICY_TIMEOUT_S at 30 Hz).
    policy_timeout_ticks: int = 15

    def __post_init__(self) -> None:
        ActionLayout(self.arms, self.action_space)  # validates action_space
        if self.blend_steps < 0:
            raise ValueError(f"blend_steps: expected >= 0, got {self.blend_steps!r}")
        if isinstance(self.policy_timeout_ticks, bool) or not (
            isinstance(self.policy_timeout_ticks, int) and self.policy_timeout_ticks >= 1
        ):
            raise ValueError(
                f"policy_timeout_ticks: expected an int >= 1, got {self.policy_timeout_ticks!r}"
            )


@dataclass(frozen=True)
class MuxOutput:
    target: ArmTarget
    authority: Authority  # the authority in force (the label recorded with the command)
    model_index: int  # actor step for policy commands, -1 for human / hold
    held: bool  # True when the last output was repeated because the source had nothing


@dataclass
class _ArmState:
    authority: Authority | None = None
    last: ArmTarget | None = None
    hold: ArmTarget | None = None
    blend_start: ArmTarget | None = None
    blend_k: int = 0
    policy_missing: int = 0  # POLICY ticks in a row without a policy target


class CommandMux:
    def __init__(self, config: MuxConfig | None = None) -> None:
        self.config = config or MuxConfig()
        self.reset()

    def reset(self) -> None:
        """Forget every arm's last output (a new episode starts from the measured pose)."""
        self._arms = {arm: _ArmState() for arm in self.config.arms}

    def policy_stalled(self, arm: str) -> bool:
        return self._arms[arm].policy_missing >= self.config.policy_timeout_ticks

    def blending(self, arm: str) -> bool:
        return self._arms[arm].blend_start is not None

    def last_output(self, arm: str) -> ArmTarget | None:
        return self._arms[arm].last

    def tick(
        self,
        authority: Mapping[str, Authority],
        policy: Mapping[str, ArmTarget | None],
        human: Mapping[str, ArmTarget | None],
        measured: Mapping[str, ArmTarget | None],
        model_index: int = -1,
        arms: tuple[str, ...] | None = None,
    ) -> dict[str, MuxOutput | None]:
        """One tick for `arms` (default: all); arms ticked separately keep separate state."""
        return {
            arm: self._tick_arm(
                arm,
                Authority(authority[arm]),
                policy.get(arm),
                human.get(arm),
                measured.get(arm),
                model_index,
            )
            for arm in (self.config.arms if arms is None else arms)
        }

    def _tick_arm(
        self,
        arm: str,
        auth: Authority,
        policy: ArmTarget | None,
        human: ArmTarget | None,
        measured: ArmTarget | None,
        model_index: int,
    ) -> MuxOutput | None:
        st = self._arms[arm]
        current = st.last if st.last is not None else measured
        if auth != st.authority:
            st.blend_start = None
            if auth == Authority.HUMAN and self.config.blend_steps > 0:
                st.blend_start, st.blend_k = current, 0
            if auth == Authority.HOLD:
                st.hold = current
            st.authority = auth

        held = False
        index = -1
        if auth == Authority.HOLD:
            if st.hold is None:
                st.hold = current
            target = st.hold
            held = True
        elif auth == Authority.HUMAN:
            target = human
            if target is not None and st.blend_start is not None:
                st.blend_k += 1
                alpha = st.blend_k / self.config.blend_steps
                target = ArmTarget(
                    blend_pose(
                        st.blend_start.targets,
                        target.targets,
                        alpha,
                        ee=self.config.action_space == "ee",
                    ),
                    (1 - alpha) * st.blend_start.gripper + alpha * target.gripper,
                )
                if st.blend_k >= self.config.blend_steps:
                    st.blend_start = None
            elif target is not None:
                st.blend_start = None  # human has a command but no start pose known: none to blend
        else:
            target = policy
            index = model_index if policy is not None else -1
            st.policy_missing = 0 if policy is not None else st.policy_missing + 1
        if target is None:
            target, held, index = current, True, -1
        if target is None:
            return None
        st.last = target
        if auth == Authority.POLICY and self.policy_stalled(arm):
            return MuxOutput(target, Authority.HOLD, -1, True)
        return MuxOutput(target, auth, index, held)
