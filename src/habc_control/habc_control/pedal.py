"""Foot-pedal input through evdev (USB foot switches enumerate as keyboards). No rclpy.

    reader = PedalReader(PedalConfig(device="usb-PCsensor_FootSwitch-event-kbd",
                                     keys={"left": "KEY_A", "right": "KEY_C"}))
    reader.open()                        # PedalLostError naming the device if it is missing
    levels = reader.poll()               # {"left": True, "right": False}: raw switch levels
    arbiter.update(levels, now, source="pedal")

`keys` maps an arm to a key name; the arm name "both" drives every arm with one key. The device is
a path (/dev/input/event5) or a name under /dev/input/by-id. The pedal is grabbed exclusively so
its key presses do not type into the operator's terminal. A read error (unplugged) raises
PedalLostError: the caller switches every arm to HOLD and says so loudly.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

BY_ID_DIR = "/dev/input/by-id"
EV_KEY = 1  # linux/input-event-codes.h; same value in evdev.ecodes.EV_KEY
KEY_UP, KEY_DOWN, KEY_HOLD = 0, 1, 2


class PedalLostError(RuntimeError):
    """The pedal device is missing or stopped answering."""


@dataclass(frozen=True)
class PedalConfig:
    device: str
    keys: Mapping[str, str] = field(default_factory=lambda: {"both": "KEY_B"})
    arms: tuple[str, ...] = ("left", "right")
    grab: bool = True

    def __post_init__(self) -> None:
        if not self.device:
            raise ValueError("device: need a /dev/input path or a /dev/input/by-id name")
        if not self.keys:
            raise ValueError("keys: need at least one arm -> key entry")
        for arm, key in self.keys.items():
            if arm != "both" and arm not in self.arms:
                raise ValueError(f"keys: unknown arm {arm!r}; valid: {[*self.arms, 'both']}")
            if not str(key).startswith(("KEY_", "BTN_")):
                raise ValueError(f"keys[{arm!r}]: expected an evdev key name, got {key!r}")

    def device_path(self) -> str:
        if os.sep in self.device:
            return self.device
        return os.path.join(BY_ID_DIR, self.device)


def _default_open(path: str) -> Any:
    import evdev  # deferred: evdev needs /dev/input only when a pedal is really used

    return evdev.InputDevice(path)


def _default_code(name: str) -> int:
    from evdev import ecodes  # optional: evdev needs /dev/input only when a pedal is used

    try:
        return int(ecodes.ecodes[name])
    except KeyError:
        raise ValueError(f"keys: {name!r} is not an evdev key code name") from None


class PedalReader:
    """Raw per-arm switch levels from one evdev device."""

    def __init__(
        self,
        config: PedalConfig,
        open_device: Callable[[str], Any] = _default_open,
        key_code: Callable[[str], int] = _default_code,
    ) -> None:
        self.config = config
        self._open_device = open_device
        self._code_arms: dict[int, tuple[str, ...]] = {}
        for arm, key in config.keys.items():
            arms = config.arms if arm == "both" else (arm,)
            code = key_code(key)
            self._code_arms[code] = self._code_arms.get(code, ()) + arms
        self._down: set[int] = set()
        self._dev: Any = None

    @property
    def connected(self) -> bool:
        return self._dev is not None

    def open(self) -> None:
        path = self.config.device_path()
        try:
            dev = self._open_device(path)
        except OSError as exc:
            raise PedalLostError(f"pedal device {path} cannot be opened: {exc}") from exc
        if self.config.grab:
            try:
                dev.grab()
            except OSError as exc:  # another program grabbed it: still usable, but say so
                raise PedalLostError(f"pedal device {path} is grabbed elsewhere: {exc}") from exc
        self._dev = dev
        try:
            active = set(dev.active_keys())
        except OSError as exc:
            self._lost(exc)
        self._down = {c for c in active if c in self._code_arms}

    def levels(self) -> dict[str, bool]:
        out = dict.fromkeys(self.config.arms, False)
        for code in self._down:
            for arm in self._code_arms[code]:
                out[arm] = True
        return out

    def poll(self) -> dict[str, bool]:
        """Drain pending events (non-blocking) and return the raw level of each arm's switch."""
        if self._dev is None:
            raise PedalLostError(f"pedal device {self.config.device_path()} is not open")
        while True:
            try:
                ev = self._dev.read_one()
            except BlockingIOError:
                break
            except OSError as exc:
                self._lost(exc)
            if ev is None:
                break
            if ev.type != EV_KEY or ev.code not in self._code_arms:
                continue
            if ev.value in (KEY_DOWN, KEY_HOLD):
                self._down.add(ev.code)
            elif ev.value == KEY_UP:
                self._down.discard(ev.code)
        return self.levels()

    def close(self) -> None:
        if self._dev is not None:
            try:
                if self.config.grab:
                    self._dev.ungrab()
                self._dev.close()
            except OSError:
                pass  # already gone (unplugged): nothing left to release
            self._dev = None
        self._down.clear()

    def _lost(self, exc: OSError) -> None:
        path = self.config.device_path()
        self._dev = None
        self._down.clear()
        why = "unplugged" if exc.errno == errno.ENODEV else str(exc)
        raise PedalLostError(f"pedal device {path} lost ({why})") from exc
