"""The arm driver's per-tick core, without ROS: requests in, safety core, backend out.

The arm node and the DDS-free collector both run this, so a simulated episode from either one is
the same kind of data: the same clamps, the same holds, the same executed command::

    core = DriverCore(backend, SafetyConfig(...), mode=MODE_EE)
    core.request(arm, Command(...), model_index=k, now=t)   # each request received
    core.set_held(arm, True)                                # /control_authority HOLD
    core.observe(arm)                                       # read only: nothing sent
    for arm, (measured, executed) in core.tick(now).items():  # read, safety, send
        publish(measured); record(executed)                  # executed = the recorded action
    backend.step()

`executed.command` is exactly what `backend.send` got; `executed.flags` are the contract's
SAFETY_* bits that say which rule shaped it; `model_index` is the request's (-1 when held).
`tick_arm(arm, now, hold=True)` holds whatever was requested (the arm node while deactivated).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from arx_x5_driver.backend import RigBackend
from arx_x5_driver.safety import AUTHORITY_HOLD, ArmSafety, Command, Measured, SafetyConfig


@dataclass(frozen=True)
class Executed:
    """What one arm was sent this tick, and why it looks the way it does."""

    command: Command
    flags: int
    model_index: int
    holding: bool
    events: list[str] = field(default_factory=list)
    fault: str = ""  # the arm stopped following its targets (reported once)


@dataclass(frozen=True)
class ArmCounters:
    """What the safety core did to one arm since the driver started (sim resets included)."""

    clamps: int = 0  # ticks a step limit moved the target less far than requested
    watchdog_trips: int = 0  # times the command stream went silent and the arm was held
    watchdog_holding: bool = False  # held by the watchdog right now
    fault: str = ""  # the arm stopped following its targets (needs a driver restart)


class DriverCore:
    def __init__(self, backend: RigBackend, config: SafetyConfig, mode: int) -> None:
        self.backend = backend
        self.config = config
        self.mode = mode
        self.arms = tuple(backend.arms)
        self._held: set[str] = set()
        self._carried = {a: ArmCounters() for a in self.arms}
        self.safety: dict[str, ArmSafety] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every arm's last target and request (after the rig was reset under it). A
        HOLD from /control_authority stays: the operator's, not the scene's. The counters
        carry over (they describe the driver's run, not one layout)."""
        self._carried = {a: replace(self.counters(a), watchdog_holding=False) for a in self.arms}
        self.safety = {a: ArmSafety(self.config, name=a, mode=self.mode) for a in self.arms}
        self._model_index = dict.fromkeys(self.arms, -1)

    def set_held(self, arm: str, held: bool) -> None:
        """HOLD authority for `arm`: it holds whatever the requests say."""
        if held:
            self._held.add(arm)
        else:
            self._held.discard(arm)

    def held(self, arm: str) -> bool:
        return arm in self._held

    def counters(self, arm: str) -> ArmCounters:
        base = self._carried[arm]
        safety = self.safety.get(arm)
        if safety is None:
            return base
        return ArmCounters(
            base.clamps + safety.clamp_count,
            base.watchdog_trips + safety.watchdog_trips,
            safety.watchdog_holding,
            safety.fault or base.fault,
        )

    def observe(self, arm: str) -> Measured:
        """Read one arm and send nothing (the arm node configured but not yet activated)."""
        return self.backend.read(arm)

    def request(self, arm: str, cmd: Command, model_index: int, now: float) -> None:
        if arm in self._held:
            cmd = Command(cmd.mode, cmd.targets, cmd.gripper, AUTHORITY_HOLD)
        self.safety[arm].on_command(cmd, now)
        self._model_index[arm] = int(model_index)

    def tick_arm(self, arm: str, now: float, hold: bool = False) -> tuple[Measured, Executed]:
        """Read one arm, decide its command through the safety core, send it. `hold`: hold
        whatever was requested, like HOLD authority (the arm node while deactivated)."""
        measured = self.backend.read(arm)
        safety = self.safety[arm]
        if arm in self._held:
            safety.on_command(safety.hold_command(measured), now)
        if hold:
            safety.on_command(safety.hold_command(measured), now)
        out = safety.tick(now, measured)
        self.backend.send(arm, out.command)
        fault = safety.fault if safety.fault in out.events else ""
        index = -1 if out.holding else self._model_index[arm]
        return measured, Executed(out.command, out.flags, index, out.holding, out.events, fault)

    def tick(self, now: float) -> dict[str, tuple[Measured, Executed]]:
        return {arm: self.tick_arm(arm, now) for arm in self.arms}
