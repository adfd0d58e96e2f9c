"""What the arm driver and the camera node report on /diagnostics, decided without ROS.

One status per arm and one per camera, each a level (OK / WARN / ERROR, diagnostic_msgs'
numbers), a name (`<node>: <arm or camera>`), a hardware id and key/values; the nodes only turn a
`Status` into a `diagnostic_msgs/DiagnosticStatus` (arx_x5_driver.messages) about once a second.

Arm levels: ERROR when the arm stopped following its targets (the SDK's over-current damping
needs a driver restart) or the last control tick failed; WARN while the watchdog holds the arm
(its commands stopped), when ticks overran their period in the last window, or before the
backend is connected; OK otherwise. Camera levels: ERROR while the device is lost; WARN when a
configured camera delivered less than half its `fps` in the last window; OK otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from arx_x5_driver.driver_core import ArmCounters

# The diagnostic aggregator's topic: absolute by ROS convention (diagnostic_updater's too), so a
# namespaced driver still reports where the aggregator listens.
DIAGNOSTICS_TOPIC = "/diagnostics"
# diagnostic_msgs/DiagnosticStatus levels
OK, WARN, ERROR = 0, 1, 2
# Lifecycle states in which the node holds no hardware.
_DISCONNECTED = ("unconfigured", "finalized")


@dataclass(frozen=True)
class Status:
    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]


class RateMeter:
    """Events per second between two samples of a running count (the diagnostics' window)."""

    def __init__(self) -> None:
        self._last: tuple[int, float] | None = None

    def rate(self, count: int, now: float) -> float:
        last, self._last = self._last, (count, now)
        if last is None or now <= last[1]:
            return math.nan
        return (count - last[0]) / (now - last[1])


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.1f}"


@dataclass(frozen=True)
class ArmHealth:
    """One arm's figures at one diagnostics sample."""

    arm: str
    hardware_id: str
    lifecycle_state: str  # unconfigured, inactive, active, finalized
    held: bool  # HOLD authority on /control_authority
    counters: ArmCounters
    tick_rate_hz: float  # ticks per second in the last window (nan: first sample)
    control_hz: float
    overruns: int  # ticks that ran past their period, since configure
    window_overruns: int  # of those, in the last window
    tick_error: str = ""  # the last failed tick's error, in the last window


def arm_status(node_name: str, h: ArmHealth) -> Status:
    c = h.counters
    if c.fault:
        level, message = ERROR, c.fault
    elif h.tick_error:
        level, message = ERROR, f"control tick failed: {h.tick_error}"
    elif h.lifecycle_state in _DISCONNECTED:
        level, message = WARN, f"{h.lifecycle_state}: backend not connected"
    elif c.watchdog_holding:
        level, message = WARN, "watchdog hold: no fresh command"
    elif h.window_overruns:
        level, message = WARN, f"{h.window_overruns} tick overruns in the last window"
    elif h.lifecycle_state == "inactive":
        level, message = OK, "inactive: requests ignored"
    else:
        level, message = OK, "HOLD authority" if h.held else h.lifecycle_state
    values = (
        ("lifecycle_state", h.lifecycle_state),
        ("held", str(h.held).lower()),
        ("watchdog_holding", str(c.watchdog_holding).lower()),
        ("watchdog_trips", str(c.watchdog_trips)),
        ("clamp_count", str(c.clamps)),
        ("tracking_fault", c.fault),
        ("tick_rate_hz", _fmt(h.tick_rate_hz)),
        ("control_hz", _fmt(h.control_hz)),
        ("overruns", str(h.overruns)),
        ("window_overruns", str(h.window_overruns)),
    )
    return Status(level, f"{node_name}: {h.arm}", message, h.hardware_id, values)


@dataclass(frozen=True)
class CameraHealth:
    """One camera's figures at one diagnostics sample."""

    camera: str
    serial: str
    lifecycle_state: str
    fps: int  # configured
    frame_rate_hz: float  # frames read per second in the last window (nan: first sample)
    frames: int  # frames published since activate
    reconnects: int
    lost: bool
    last_error: str


def camera_status(node_name: str, h: CameraHealth) -> Status:
    if h.lost:
        level, message = ERROR, h.last_error or "device lost"
    elif h.lifecycle_state in _DISCONNECTED:
        level, message = WARN, f"{h.lifecycle_state}: device closed"
    elif not math.isnan(h.frame_rate_hz) and h.frame_rate_hz < 0.5 * h.fps:
        level, message = WARN, f"{h.frame_rate_hz:.1f} frames/s of {h.fps}"
    else:
        level, message = OK, h.lifecycle_state
    values = (
        ("lifecycle_state", h.lifecycle_state),
        ("frame_rate_hz", _fmt(h.frame_rate_hz)),
        ("fps", str(h.fps)),
        ("frames_published", str(h.frames)),
        ("reconnects", str(h.reconnects)),
        ("lost", str(h.lost).lower()),
        ("last_error", h.last_error),
    )
    return Status(level, f"{node_name}: {h.camera}", message, f"realsense:{h.serial}", values)
