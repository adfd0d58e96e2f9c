"""Per-arm control authority: who commands each arm (POLICY / HUMAN / HOLD).

Pure Python (no rclpy): the teleop node, the command mux and the DDS-free collector all
run this same code.

Typical use, one call per control tick (or per pedal event)::

    arbiter = AuthorityArbiter(AuthorityConfig(arms=("left", "right"), mode="hold"))
    changes = arbiter.update({"left": pedal_left_down, "right": False}, now=t, source="pedal")
    for c in changes: ...                      # publish /control_authority on every change
    if arbiter.heartbeat_due(t): publish(arbiter.snapshot()); arbiter.mark_published(t)

    arbiter.hold_all(now=t, source="pedal", reason="device lost")   # latched until resume()
    arbiter.resume(now=t, source="keyboard")

Raw switch inputs are debounced (`debounce_s`): a level must be stable that long before it
counts. In `hold` mode a pressed switch means HUMAN and a released one POLICY; in `toggle` mode
every debounced press flips POLICY <-> HUMAN. HOLD is latched: only `resume()` leaves it, so a
flaky pedal can never hand the arm back to the policy on its own.

`blend_pose` is the no-jump interpolation the mux uses when an arm switches to HUMAN.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from habc_core.contract import AUTHORITY_HOLD, AUTHORITY_HUMAN, AUTHORITY_POLICY
from habc_core.rotations import orthonormalize_rot6d

INPUT_MODES = ("hold", "toggle")
# Consumers hold every arm when /control_authority has been silent this long: four missed
# heartbeats (heartbeat_s 0.5) is a teleop node gone, not a late message.
AUTHORITY_TIMEOUT_S = 2.0


class Authority(enum.IntEnum):
    """The typed view of the contract's authority values (the ControlAuthority wire values)."""

    POLICY = AUTHORITY_POLICY
    HUMAN = AUTHORITY_HUMAN
    HOLD = AUTHORITY_HOLD


@dataclass(frozen=True)
class AuthorityConfig:
    """Arbitration settings. Times in seconds."""

    arms: tuple[str, ...] = ("left", "right")
    mode: str = "hold"  # "hold": pressed = HUMAN; "toggle": each press flips POLICY/HUMAN
    debounce_s: float = 0.03
    heartbeat_s: float = 0.5  # /control_authority must be re-published at >= 1 Hz
    initial: Authority = Authority.POLICY

    def __post_init__(self) -> None:
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms: need distinct arm names, got {self.arms!r}")
        if self.mode not in INPUT_MODES:
            raise ValueError(f"mode: expected one of {INPUT_MODES}, got {self.mode!r}")
        if not (0.0 <= self.debounce_s < 1.0):
            raise ValueError(f"debounce_s: expected 0 <= debounce_s < 1, got {self.debounce_s!r}")
        if not (0.0 < self.heartbeat_s <= 1.0):
            raise ValueError(
                f"heartbeat_s: expected 0 < heartbeat_s <= 1, got {self.heartbeat_s!r}"
            )
        object.__setattr__(self, "initial", Authority(self.initial))


@dataclass(frozen=True)
class AuthorityChange:
    arm: str
    previous: Authority
    current: Authority
    source: str
    time: float


class Debouncer:
    """A raw boolean level becomes the stable level once it has held for `debounce_s`."""

    def __init__(self, debounce_s: float, initial: bool = False) -> None:
        self._debounce_s = debounce_s
        self._stable = initial
        self._candidate = initial
        self._since = -math.inf

    @property
    def stable(self) -> bool:
        return self._stable

    @property
    def raw(self) -> bool:
        """The last raw level fed in."""
        return self._candidate

    def update(self, raw: bool, now: float) -> bool:
        """Feed the raw level seen at `now`; returns the debounced level."""
        if raw != self._candidate:
            self._candidate = raw
            self._since = now
        if self._candidate != self._stable and now - self._since >= self._debounce_s:
            self._stable = self._candidate
        return self._stable


class AuthorityArbiter:
    """Per-arm POLICY / HUMAN / HOLD state machine fed by switch levels or direct requests."""

    def __init__(self, config: AuthorityConfig) -> None:
        self.config = config
        self._state = {arm: config.initial for arm in config.arms}
        self._debounce = {arm: Debouncer(config.debounce_s) for arm in config.arms}
        self._source = "init"
        self._last_published = -math.inf
        self._hold_reason = ""

    # --- queries ---
    @property
    def arms(self) -> tuple[str, ...]:
        return self.config.arms

    @property
    def source(self) -> str:
        """What produced the latest change ("pedal", "keyboard", "sim_operator", "safety")."""
        return self._source

    @property
    def hold_reason(self) -> str:
        return self._hold_reason

    def authority(self, arm: str) -> Authority:
        return self._state[self._check_arm(arm)]

    def snapshot(self) -> dict[str, Authority]:
        return dict(self._state)

    def any_human(self) -> bool:
        return any(a == Authority.HUMAN for a in self._state.values())

    # --- inputs ---
    def update(
        self, pressed: Mapping[str, bool], now: float, source: str = "pedal"
    ) -> list[AuthorityChange]:
        """Feed raw switch levels (arms missing from `pressed` keep their last raw level)."""
        changes: list[AuthorityChange] = []
        for arm in self.config.arms:
            deb = self._debounce[arm]
            before = deb.stable
            raw = bool(pressed[arm]) if arm in pressed else deb.raw
            after = deb.update(raw, now)
            current = self._state[arm]
            if current == Authority.HOLD:
                continue  # latched: only resume() leaves HOLD
            if self.config.mode == "hold":
                target = Authority.HUMAN if after else Authority.POLICY
            elif after and not before:  # toggle on the debounced press edge only
                target = Authority.POLICY if current == Authority.HUMAN else Authority.HUMAN
            else:
                target = current
            changes += self._set(arm, target, now, source)
        return changes

    def poll(self, now: float, source: str = "pedal") -> list[AuthorityChange]:
        """Advance debouncing with no new input (call every tick so a held level settles)."""
        return self.update({}, now, source)

    def request(
        self, arm: str, authority: Authority, now: float, source: str
    ) -> list[AuthorityChange]:
        """Direct request (keyboard command, simulated operator). HOLD stays latched."""
        self._check_arm(arm)
        if self._state[arm] == Authority.HOLD and authority != Authority.HOLD:
            return []
        return self._set(arm, Authority(authority), now, source)

    def hold_all(self, now: float, source: str, reason: str) -> list[AuthorityChange]:
        """Every arm to HOLD (pedal lost, safety fault, shutdown); latched until resume()."""
        self._hold_reason = reason
        changes: list[AuthorityChange] = []
        for arm in self.config.arms:
            changes += self._set(arm, Authority.HOLD, now, source)
        return changes

    def resume(
        self, now: float, source: str, arms: Iterable[str] | None = None
    ) -> list[AuthorityChange]:
        """Leave HOLD. In hold mode the (debounced) switch level decides; else POLICY."""
        changes: list[AuthorityChange] = []
        for arm in arms if arms is not None else self.config.arms:
            self._check_arm(arm)
            if self._state[arm] != Authority.HOLD:
                continue
            held = self.config.mode == "hold" and self._debounce[arm].stable
            changes += self._set(arm, Authority.HUMAN if held else Authority.POLICY, now, source)
        if all(a != Authority.HOLD for a in self._state.values()):
            self._hold_reason = ""
        return changes

    # --- heartbeat ---
    def heartbeat_due(self, now: float) -> bool:
        return now - self._last_published >= self.config.heartbeat_s

    def mark_published(self, now: float) -> None:
        self._last_published = now

    # --- internals ---
    def _check_arm(self, arm: str) -> str:
        if arm not in self._state:
            raise KeyError(f"unknown arm {arm!r}; arms are {self.config.arms}")
        return arm

    def _set(self, arm: str, target: Authority, now: float, source: str) -> list[AuthorityChange]:
        previous = self._state[arm]
        if previous == target:
            return []
        self._state[arm] = target
        self._source = source
        return [AuthorityChange(arm, previous, target, source, now)]


def blend_pose(start: np.ndarray, target: np.ndarray, alpha: float, ee: bool) -> np.ndarray:
    """Interpolate one arm's targets from `start` (alpha=0) to `target` (alpha=1).

    `ee=True`: xyz + 6-D rotation (9 values); the rotation is re-orthonormalised. Otherwise the
    values are joint positions and a plain lerp is exact.
    """
    start = np.asarray(start, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if start.shape != target.shape:
        raise ValueError(f"blend_pose: shape mismatch {start.shape} vs {target.shape}")
    alpha = min(max(float(alpha), 0.0), 1.0)
    out = (1.0 - alpha) * start + alpha * target
    if ee and out.shape[0] >= 9:
        out[3:9] = orthonormalize_rot6d(out[3:9])
    return out


class AuthorityWatch:
    """The consumer side of /control_authority: the last state heard, or HOLD when it went stale.

    The teleop node re-publishes every `heartbeat_s`; if nothing arrives for `timeout_s` (node
    crashed, pedal PC unplugged) the operator can no longer take over, so every arm is HOLD.
    Before the first message every arm is HOLD too.
    """

    def __init__(self, arms: Iterable[str], timeout_s: float = AUTHORITY_TIMEOUT_S) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: must be > 0, got {timeout_s!r}")
        self.arms = tuple(arms)
        self.timeout_s = timeout_s
        self._state = dict.fromkeys(self.arms, Authority.HOLD)
        self._heard = -math.inf

    def update(self, authority: Mapping[str, Authority], now: float) -> None:
        for arm, a in authority.items():
            if arm in self._state:
                self._state[arm] = Authority(a)
        self._heard = now

    @property
    def heard(self) -> bool:
        """Whether any authority message has arrived yet."""
        return self._heard > -math.inf

    def stale(self, now: float) -> bool:
        return now - self._heard > self.timeout_s

    def current(self, now: float) -> dict[str, Authority]:
        if self.stale(now):
            return dict.fromkeys(self.arms, Authority.HOLD)
        return dict(self._state)
