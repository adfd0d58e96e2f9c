"""The arm-backend protocol: what the arm node needs from the real SDK rig or the sim rig.

A backend drives every arm of one rig (the sim steps both arms in one MuJoCo world; the real one
holds one SDK controller per CAN interface). The node calls, per control tick::

    backend.read(arm) -> Measured          # joints (6,), ee (9: xyz + 6-D rot), gripper
    backend.send(arm, command)             # a safety-checked Command (safety.py)
    backend.step()                         # sim: advance physics one tick; real: no-op

Building a backend connects and reads the arms but moves nothing (the SDK starts an X5 in
damping). `backend.enable()` powers the arms to hold where they are (the arm node's lifecycle
activate, before the first `send`); on shutdown `backend.safe_stop()` then `backend.close()`.

`KinematicRigBackend` is a dependency-free stand-in (targets are reached at once, no physics)
for tests and for running the graph with no simulator.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from arx_x5_driver.safety import Command, Measured
from habc_core.contract import MODE_JOINT


@runtime_checkable
class RigBackend(Protocol):
    arms: tuple[str, ...]

    def read(self, arm: str) -> Measured: ...

    def send(self, arm: str, command: Command) -> None: ...

    def enable(self) -> None: ...

    def step(self) -> None: ...

    def safe_stop(self) -> None: ...

    def close(self) -> None: ...


# EE pose of the X5 tool point at q = 0 (arm base frame), identity orientation.
HOME_EE = np.array([0.2402, 0.0010, 0.1565, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


class KinematicRigBackend:
    """Every command is reached instantly; joint and EE states are tracked independently."""

    def __init__(self, arms: tuple[str, ...] = ("left", "right")) -> None:
        self.arms = tuple(arms)
        self._joints = {a: np.zeros(6) for a in self.arms}
        self._ee = {a: HOME_EE.copy() for a in self.arms}
        self._gripper = dict.fromkeys(self.arms, 0.088)
        self.sent: dict[str, list[Command]] = {a: [] for a in self.arms}
        self.enabled = False
        self.stopped = False
        self.closed = False

    def read(self, arm: str) -> Measured:
        return Measured(self._joints[arm].copy(), self._ee[arm].copy(), self._gripper[arm])

    def send(self, arm: str, command: Command) -> None:
        self.sent[arm].append(command)
        if command.mode == MODE_JOINT:
            self._joints[arm] = command.targets.copy()
        else:
            self._ee[arm] = command.targets.copy()
        self._gripper[arm] = command.gripper

    def enable(self) -> None:
        self.enabled = True

    def step(self) -> None:
        pass

    def safe_stop(self) -> None:
        self.enabled = False
        self.stopped = True

    def close(self) -> None:
        self.closed = True
