"""Teleop input supervision: pedal lifecycle and the scripted simulated operator. No rclpy.

`PedalSupervisor.tick(now)` polls the pedal and feeds the arbiter. A lost pedal switches every
arm to HOLD (latched) and returns an error to shout; the device is re-opened every
`reconnect_s`; once it is back and every switch has been released for `resume_after_s`, the arms
leave HOLD. Nothing moves again until the operator's foot is off the pedal.

`ScheduledOperator` is the simulated operator's foot: takeover windows in seconds since the
episode started, e.g. ("left", 2.0, 4.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from habc_control.authority import AuthorityArbiter, AuthorityChange
from habc_control.pedal import PedalLostError, PedalReader


@dataclass(frozen=True)
class TickResult:
    changes: list[AuthorityChange]
    error: str = ""  # non-empty: log loudly
    info: str = ""


class PedalSupervisor:
    def __init__(
        self,
        reader: PedalReader,
        arbiter: AuthorityArbiter,
        reconnect_s: float = 1.0,
        resume_after_s: float = 1.0,
    ) -> None:
        self.reader = reader
        self.arbiter = arbiter
        self.reconnect_s = reconnect_s
        self.resume_after_s = resume_after_s
        self._next_try = -math.inf
        self._released_since: float | None = None
        self._lost = False

    @property
    def lost(self) -> bool:
        return self._lost

    def tick(self, now: float) -> TickResult:
        if not self.reader.connected:
            if now < self._next_try:
                return TickResult([])
            self._next_try = now + self.reconnect_s
            try:
                self.reader.open()
            except PedalLostError as exc:
                changes = self.arbiter.hold_all(now, "pedal", str(exc))
                first = not self._lost
                self._lost = True
                return TickResult(changes, f"{exc}: every arm HOLD" if first or changes else "")
            self._released_since = None
            info = f"pedal {self.reader.config.device_path()} connected"
            if self._lost:
                info += "; release every switch to leave HOLD"
            return TickResult([], info=info)
        try:
            levels = self.reader.poll()
        except PedalLostError as exc:
            self._lost = True
            self._next_try = now + self.reconnect_s
            changes = self.arbiter.hold_all(now, "pedal", str(exc))
            return TickResult(changes, f"{exc}: every arm HOLD until it is back and released")
        changes = self.arbiter.update(levels, now, "pedal")
        if self._lost:
            if any(levels.values()):
                self._released_since = None
            elif self._released_since is None:
                self._released_since = now
            elif now - self._released_since >= self.resume_after_s:
                self._lost = False
                changes += self.arbiter.resume(now, "pedal")
                return TickResult(changes, info="pedal back and released: leaving HOLD")
        return TickResult(changes)


@dataclass(frozen=True)
class TakeoverWindow:
    arm: str
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.start_s < self.end_s):
            raise ValueError(f"takeover window: need 0 <= start < end, got {self}")


def parse_schedule(items: Sequence[str]) -> list[TakeoverWindow]:
    """["left:2.0:4.5", "both:6:7"] -> windows ("both" expands upstream by arm list)."""
    out = []
    for item in items:
        parts = str(item).split(":")
        if len(parts) != 3:
            raise ValueError(f"sim_schedule: {item!r} is not 'arm:start_s:end_s'")
        out.append(TakeoverWindow(parts[0], float(parts[1]), float(parts[2])))
    return out


class ScheduledOperator:
    """The simulated operator's pedal: pressed inside its windows, relative to episode start."""

    def __init__(self, windows: Sequence[TakeoverWindow], arms: Sequence[str]) -> None:
        self.windows = list(windows)
        self.arms = tuple(arms)
        for w in self.windows:
            if w.arm != "both" and w.arm not in self.arms:
                raise ValueError(f"sim_schedule: unknown arm {w.arm!r}; arms are {self.arms}")
        self.episode_start: float | None = None

    def levels(self, now: float) -> dict[str, bool]:
        out = dict.fromkeys(self.arms, False)
        if self.episode_start is None:
            return out
        t = now - self.episode_start
        for w in self.windows:
            if w.start_s <= t < w.end_s:
                for arm in self.arms if w.arm == "both" else (w.arm,):
                    out[arm] = True
        return out
