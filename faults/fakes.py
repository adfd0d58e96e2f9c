"""Fakes at the hardware API boundary that can be made to fail on cue (no device needed)."""

from __future__ import annotations

import errno

from evdev import InputEvent, ecodes


class FakePedalDevice:
    """The parts of evdev.InputDevice the pedal reader uses, with an unplug switch.

    `press(key)` / `release(key)` queue key events; `unplugged = True` makes every call fail with
    ENODEV like a pulled USB cable; `grab_fails = True` makes grab() fail like a device another
    program holds.
    """

    def __init__(self) -> None:
        self.queue: list[InputEvent] = []
        self.down: set[int] = set()
        self.unplugged = False
        self.grab_fails = False

    def _check(self) -> None:
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")

    def press(self, key: str) -> None:
        code = ecodes.ecodes[key]
        self.down.add(code)
        self.queue.append(InputEvent(0, 0, ecodes.EV_KEY, code, 1))

    def release(self, key: str) -> None:
        code = ecodes.ecodes[key]
        self.down.discard(code)
        self.queue.append(InputEvent(0, 0, ecodes.EV_KEY, code, 0))

    def read_one(self) -> InputEvent | None:
        self._check()
        return self.queue.pop(0) if self.queue else None

    def active_keys(self) -> list[int]:
        self._check()
        return sorted(self.down)

    def grab(self) -> None:
        self._check()
        if self.grab_fails:
            raise OSError(errno.EBUSY, "Device or resource busy")

    def ungrab(self) -> None:
        self._check()

    def close(self) -> None:
        pass


class PedalPort:
    """What `PedalReader` opens: the fake device while plugged in, ENOENT while it is not."""

    def __init__(self, device: FakePedalDevice | None = None) -> None:
        self.device = device or FakePedalDevice()
        self.present = True
        self.opened = 0

    def unplug(self) -> None:
        self.present = False
        self.device.unplugged = True

    def plug_in(self) -> None:
        self.present = True
        self.device.unplugged = False
        self.device.queue.clear()  # a re-enumerated device starts with no pending events

    def open(self, path: str) -> FakePedalDevice:
        if not self.present:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.opened += 1
        return self.device
