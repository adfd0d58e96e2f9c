"""Safety core shared by every arm backend (real SDK and sim). Pure Python, no rclpy.

Per arm, per control tick::

    safety = ArmSafety(SafetyConfig(...))
    safety.on_command(cmd, now)                  # each ArmCommand received
    out = safety.tick(now, measured)             # what to send this tick (never None)
    backend.send(arm, out.command)
    for e in out.events: log.warn(e)             # clamps, watchdog, limits: reported, not silent

Rules, in this order:
1. HOLD authority, no command yet, or no fresh command within `watchdog_s` -> hold: the last
   target sent (or the measured pose if nothing was sent). The ARX SDK has no command timeout of
   its own: once the host stops sending, the arm keeps the last target forever.
2. Joint mode: targets clipped into the joint limits (the SDK's X5 limits shrunk by
   `joint_margin`; the SDK README calls its own clipping insufficient for safety).
   EE mode: xyz clipped into the workspace box.
3. Step limit: a target further than `max_joint_step` (rad) / `max_ee_step` (m) /
   `max_gripper_step` (m) from the last target sent is moved only that far this tick and reported.
   A jump is never executed in one tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from habc_core.action_layout import TARGET_DIMS
from habc_core.contract import (
    AUTHORITY_HOLD,
    MODE_JOINT,
    SAFETY_GRIPPER,
    SAFETY_HOLD,
    SAFETY_JOINT_LIMIT,
    SAFETY_ROTATION,
    SAFETY_STEP,
    SAFETY_WATCHDOG,
    SAFETY_WORKSPACE,
)
from habc_core.rotations import matrix_from_rot6d

# From the arx5-interface SDK's RobotConfig for "X5".
X5_JOINT_MIN = (-3.14, -0.05, -0.1, -1.6, -1.57, -2.0)
X5_JOINT_MAX = (2.618, 3.5, 3.2, 1.55, 1.57, 2.0)
GRIPPER_MAX = 0.088
# The bounds whose larger value is looser: each must be > 0, and a profile may only lower them.
UPPER_BOUNDS = ("max_joint_step", "max_ee_step", "max_rot_step", "max_gripper_step", "watchdog_s")


@dataclass(frozen=True)
class SafetyConfig:
    joint_min: tuple[float, ...] = X5_JOINT_MIN
    joint_max: tuple[float, ...] = X5_JOINT_MAX
    joint_margin: float = 0.05  # rad kept away from each SDK limit
    workspace_min: tuple[float, float, float] = (-0.05, -0.45, -0.05)  # EE xyz, arm base frame
    workspace_max: tuple[float, float, float] = (0.60, 0.45, 0.55)
    max_joint_step: float = 0.06  # rad per tick (1.8 rad/s at 30 Hz; the SDK allows 5)
    max_ee_step: float = 0.015  # m per tick (0.45 m/s at 30 Hz)
    max_rot_step: float = 0.10  # rad of orientation change per tick (EE mode)
    max_gripper_step: float = 0.01  # m per tick
    watchdog_s: float = 0.25  # no fresh command for this long -> hold
    # The arm not following its target (the SDK's over-current emergency damps it and ignores
    # commands until a restart; a collision or a dead motor look the same): this far off
    # (rad in joint mode, m in EE mode) for this long -> reported as a fault.
    tracking_error_max: float = 0.3
    tracking_error_ee_max: float = 0.08
    tracking_error_s: float = 1.0

    def __post_init__(self) -> None:
        if len(self.joint_min) != 6 or len(self.joint_max) != 6:
            raise ValueError(f"joint_min/joint_max: need 6 values each, got {self.joint_min!r}")
        for i, (lo, hi) in enumerate(zip(self.joint_min, self.joint_max, strict=True)):
            if not lo + self.joint_margin < hi - self.joint_margin:
                raise ValueError(f"joint_min[{i}]/joint_max[{i}]: empty range {lo}..{hi}")
        for name in ("joint_margin",):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)!r}")
        for name in UPPER_BOUNDS:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)!r}")
        box = zip(self.workspace_min, self.workspace_max, strict=True)
        if not all(lo < hi for lo, hi in box):
            raise ValueError(
                "workspace_min/workspace_max: empty box "
                f"{self.workspace_min}..{self.workspace_max}"
            )

    @staticmethod
    def parameters() -> dict[str, tuple[Any, str]]:
        """Parameter name -> (default, description): what the arm driver declares, and what the
        DDS-free collector reads from the same graph config (config/rollout.yaml)."""
        d = SafetyConfig()
        return {
            "joint_margin": (d.joint_margin, "rad kept from the SDK limits"),
            "workspace_min": (list(d.workspace_min), "EE box min [m], arm base frame"),
            "workspace_max": (list(d.workspace_max), "EE box max [m], arm base frame"),
            "max_joint_step": (d.max_joint_step, "rad per tick"),
            "max_ee_step": (d.max_ee_step, "m per tick"),
            "max_rot_step": (d.max_rot_step, "rad per tick"),
            "max_gripper_step": (d.max_gripper_step, "m per tick"),
            "watchdog_s": (d.watchdog_s, "hold without a command this long"),
        }

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> SafetyConfig:
        """A config from parameter values (names of `parameters()`; missing ones: defaults)."""
        known = cls.parameters()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"safety parameters: unknown {unknown}; valid: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name.startswith("workspace_"):
                if len(value) != 3:
                    raise ValueError(f"{name}: need 3 values (x, y, z), got {value!r}")
                kwargs[name] = tuple(float(v) for v in value)
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name}: expected a number, got {value!r}")
                kwargs[name] = float(value)
        return cls(**kwargs)


@dataclass(frozen=True)
class Command:
    """One arm target: MODE_JOINT -> 6 joints [rad]; MODE_EE -> xyz + 6-D rotation (9)."""

    mode: int
    targets: np.ndarray
    gripper: float
    authority: int = 0

    def __post_init__(self) -> None:
        want = TARGET_DIMS.get(self.mode)
        if want is None:
            raise ValueError(f"mode: expected MODE_JOINT (0) or MODE_EE (1), got {self.mode!r}")
        t = np.asarray(self.targets, dtype=np.float64)
        if t.shape != (want,):
            raise ValueError(f"targets: mode {self.mode} needs {want} values, got {t.shape}")
        if not np.all(np.isfinite(t)) or not np.isfinite(self.gripper):
            raise ValueError("targets: non-finite value in command")
        object.__setattr__(self, "targets", t)


@dataclass(frozen=True)
class Measured:
    joints: np.ndarray  # (6,) rad
    ee: np.ndarray  # (9,) xyz + 6-D rotation
    gripper: float


@dataclass(frozen=True)
class SafetyOutput:
    """What to send this tick; `flags` (contract SAFETY_* bits) say which rule shaped it."""

    command: Command
    holding: bool
    events: list[str] = field(default_factory=list)
    flags: int = 0


def _limit_rotation(start6: np.ndarray, goal6: np.ndarray, max_angle: float) -> tuple:
    """Rotate from start toward goal by at most max_angle (axis-angle); returns (6d, clamped)."""
    r0, r1 = matrix_from_rot6d(start6), matrix_from_rot6d(goal6)
    rel = r0.T @ r1
    angle = float(np.arccos(np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0)))
    if angle <= max_angle:
        return np.concatenate([r1[:, 0], r1[:, 1]]), False
    axis = np.array([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]])
    n = np.linalg.norm(axis)
    if n < 1e-9:  # ~180 degrees: any perpendicular axis; hold orientation instead
        return np.concatenate([r0[:, 0], r0[:, 1]]), True
    k = axis / n
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    step = np.eye(3) + np.sin(max_angle) * kx + (1 - np.cos(max_angle)) * kx @ kx
    r = r0 @ step
    return np.concatenate([r[:, 0], r[:, 1]]), True


class ArmSafety:
    def __init__(
        self, config: SafetyConfig | None = None, name: str = "arm", mode: int = MODE_JOINT
    ) -> None:
        """`mode`: the backend's command mode, used for hold commands before any was sent."""
        self.config = config or SafetyConfig()
        self.name = name
        self.mode = mode
        c = self.config
        self._jmin = np.asarray(c.joint_min) + c.joint_margin
        self._jmax = np.asarray(c.joint_max) - c.joint_margin
        self._wmin = np.asarray(c.workspace_min)
        self._wmax = np.asarray(c.workspace_max)
        self._pending: Command | None = None
        self._last_cmd_time = -np.inf
        self._sent: Command | None = None
        self._watchdog_tripped = False
        self._off_since: float | None = None
        self.fault = ""  # non-empty once the arm stopped following its targets
        self.clamp_count = 0
        # Times the watchdog started holding (a trip is the change into watchdog hold, not each
        # held tick): the diagnostics' count of command streams that went silent.
        self.watchdog_trips = 0

    @property
    def watchdog_holding(self) -> bool:
        """The arm holds because its commands stopped (not because of HOLD authority)."""
        return self._watchdog_tripped

    @property
    def last_sent(self) -> Command | None:
        return self._sent

    def on_command(self, cmd: Command, now: float) -> None:
        self._pending = cmd
        self._last_cmd_time = now

    def hold_command(self, measured: Measured, mode: int | None = None) -> Command:
        """Hold where we are: the last target sent, else the measured pose."""
        if self._sent is not None and (mode is None or mode == self._sent.mode):
            return Command(self._sent.mode, self._sent.targets, self._sent.gripper, AUTHORITY_HOLD)
        m = self.mode if mode is None else mode
        t = measured.joints if m == MODE_JOINT else measured.ee
        return Command(m, t, measured.gripper, AUTHORITY_HOLD)

    def _check_tracking(self, now: float, measured: Measured) -> list[str]:
        sent = self._sent
        if sent is None:
            return []
        if sent.mode == MODE_JOINT:
            err = float(np.max(np.abs(measured.joints - sent.targets)))
            limit = self.config.tracking_error_max
        else:
            err = float(np.linalg.norm(measured.ee[:3] - sent.targets[:3]))
            limit = self.config.tracking_error_ee_max
        if err <= limit:
            self._off_since = None
            return []
        if self._off_since is None:
            self._off_since = now
        if now - self._off_since >= self.config.tracking_error_s and not self.fault:
            self.fault = (
                f"{self.name}: not following its target ({err:.3f} > {limit} for "
                f"{now - self._off_since:.1f} s): over-current emergency damping, collision or "
                "motor fault; the ARX SDK needs a driver restart to leave emergency damping"
            )
            return [self.fault]
        return []

    def tick(self, now: float, measured: Measured) -> SafetyOutput:
        events: list[str] = self._check_tracking(now, measured)
        cmd = self._pending
        fresh = now - self._last_cmd_time <= self.config.watchdog_s
        if cmd is None or not fresh or cmd.authority == AUTHORITY_HOLD:
            if cmd is not None and not fresh and not self._watchdog_tripped:
                events.append(
                    f"{self.name}: watchdog: no command for {now - self._last_cmd_time:.3f} s "
                    f"(> {self.config.watchdog_s} s): holding position"
                )
                self.watchdog_trips += 1
            self._watchdog_tripped = cmd is not None and not fresh
            out = self.hold_command(measured)
            self._sent = out
            flags = SAFETY_WATCHDOG if cmd is not None and not fresh else SAFETY_HOLD
            return SafetyOutput(out, True, events, flags)
        self._watchdog_tripped = False
        start = self.hold_command(measured, cmd.mode)  # where the arm was told to be
        c = self.config
        flags = 0
        t = cmd.targets.copy()
        if cmd.mode == MODE_JOINT:
            clipped = np.clip(t, self._jmin, self._jmax)
            if np.any(clipped != t):
                flags |= SAFETY_JOINT_LIMIT
                events.append(
                    f"{self.name}: joint target {np.round(t, 3).tolist()} clipped "
                    "into joint limits"
                )
            t = clipped
            delta = t - start.targets
            worst = float(np.max(np.abs(delta)))
            if worst > c.max_joint_step:
                t = start.targets + np.clip(delta, -c.max_joint_step, c.max_joint_step)
                flags |= SAFETY_STEP
                events.append(
                    f"{self.name}: joint step {worst:.3f} rad > {c.max_joint_step} rad clamped"
                )
                self.clamp_count += 1
        else:
            xyz = np.clip(t[:3], self._wmin, self._wmax)
            if np.any(xyz != t[:3]):
                flags |= SAFETY_WORKSPACE
                events.append(
                    f"{self.name}: EE target {np.round(t[:3], 3).tolist()} clipped into workspace"
                )
            delta = xyz - start.targets[:3]
            dist = float(np.linalg.norm(delta))
            if dist > c.max_ee_step:
                xyz = start.targets[:3] + delta * (c.max_ee_step / dist)
                flags |= SAFETY_STEP
                events.append(f"{self.name}: EE step {dist:.3f} m > {c.max_ee_step} m clamped")
                self.clamp_count += 1
            rot, rclamped = _limit_rotation(start.targets[3:9], t[3:9], c.max_rot_step)
            if rclamped:
                flags |= SAFETY_ROTATION
                events.append(f"{self.name}: EE rotation step > {c.max_rot_step} rad clamped")
                self.clamp_count += 1
            t = np.concatenate([xyz, rot])
        g = float(np.clip(cmd.gripper, 0.0, GRIPPER_MAX))
        dg = g - start.gripper
        if abs(dg) > c.max_gripper_step:
            g = start.gripper + float(np.sign(dg)) * c.max_gripper_step
        if g != float(cmd.gripper):
            flags |= SAFETY_GRIPPER
        out = Command(cmd.mode, t, g, cmd.authority)
        self._sent = out
        return SafetyOutput(out, False, events, flags)
