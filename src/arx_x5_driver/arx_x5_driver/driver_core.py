"""The arm driver's per-tick core, without ROS: requests in, safety core, backend out.

The arm node and the DDS-free collector both run this, so a simulated episode from either one is
the same kind of data: the same clamps, the same holds, the same executed command::

    core = DriverCore(backend, SafetyConfig(...), mode=MODE_EE)
    core.request(arm, Command(...), model_index=k, now=t)   # each request received
    core.set_held(arm, True)                                # /control_authority HOLD
    for arm, (measured, executed) in core.tick(now).items():  # read, safety, send
        publish(measured); record(executed)                  # executed = the recorded action
    backend.step()

`executed.command` is exactly what `backend.send` got; `executed.flags` are the contract's
SAFETY_* bits that say which rule shaped it; `model_index` is the request's (-1 when held).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


class DriverCore:
    def __init__(self, backend: RigBackend, config: SafetyConfig, mode: int) -> None:
        self.backend = backend
        self.config = config
        self.mode = mode
        self.arms = tuple(backend.arms)
        self._held: set[str] = set()
        self.reset()

    def reset(self) -> None:
        """Forget every arm's last target and request (after the rig was reset under it). A
        HOLD from /control_authority stays: the operator's, not the scene's."""
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

    def request(self, arm: str, cmd: Command, model_index: int, now: float) -> None:
        if arm in self._held:
            cmd = Command(cmd.mode, cmd.targets, cmd.gripper, AUTHORITY_HOLD)
        self.safety[arm].on_command(cmd, now)
        self._model_index[arm] = int(model_index)

    def tick_arm(self, arm: str, now: float) -> tuple[Measured, Executed]:
        """Read one arm, decide its command through the safety core, send it."""
        measured = self.backend.read(arm)
        safety = self.safety[arm]
        if arm in self._held:
            safety.on_command(safety.hold_command(measured), now)
        out = safety.tick(now, measured)
        self.backend.send(arm, out.command)
        fault = safety.fault if safety.fault in out.events else ""
        index = -1 if out.holding else self._model_index[arm]
        return measured, Executed(out.command, out.flags, index, out.holding, out.events, fault)

    def tick(self, now: float) -> dict[str, tuple[Measured, Executed]]:
        return {arm: self.tick_arm(arm, now) for arm in self.arms}
