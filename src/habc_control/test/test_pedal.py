"""Pedal logic against a fake evdev device at the API boundary (evdev's own InputEvent objects)."""

import errno

import pytest
from evdev import InputEvent, ecodes

from habc_control.authority import Authority, AuthorityArbiter, AuthorityConfig
from habc_control.keyboard import KeyboardCommands
from habc_control.pedal import PedalConfig, PedalLostError, PedalReader

KEY_A, KEY_C = ecodes.ecodes["KEY_A"], ecodes.ecodes["KEY_C"]


class FakeDevice:
    """The parts of evdev.InputDevice the reader uses: read_one, active_keys, grab, close."""

    def __init__(self, active=()):
        self.queue: list = []
        self.active = list(active)
        self.grabbed = False
        self.unplugged = False

    def push(self, code, value, t=0.0):
        self.queue.append(InputEvent(int(t), int((t % 1) * 1e6), ecodes.EV_KEY, code, value))
        self.queue.append(InputEvent(int(t), 0, ecodes.EV_SYN, 0, 0))

    def read_one(self):
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        return self.queue.pop(0) if self.queue else None

    def active_keys(self):
        return self.active

    def grab(self):
        self.grabbed = True

    def ungrab(self):
        self.grabbed = False

    def close(self):
        pass


def make(keys, dev=None):
    dev = dev or FakeDevice()
    opened = []

    def open_device(path):
        opened.append(path)
        return dev

    reader = PedalReader(PedalConfig(device="usb-Foot-event-kbd", keys=keys), open_device)
    reader.open()
    return reader, dev, opened


def test_config_validation():
    with pytest.raises(ValueError, match="keys"):
        PedalConfig(device="x", keys={"middle": "KEY_A"})
    with pytest.raises(ValueError, match="evdev key name"):
        PedalConfig(device="x", keys={"left": "a"})


def test_by_id_name_resolves_and_device_is_grabbed():
    reader, dev, opened = make({"left": "KEY_A"})
    assert opened == ["/dev/input/by-id/usb-Foot-event-kbd"]
    assert dev.grabbed


def test_key_per_arm_levels_and_key_repeat():
    reader, dev, _ = make({"left": "KEY_A", "right": "KEY_C"})
    dev.push(KEY_A, 1)
    assert reader.poll() == {"left": True, "right": False}
    dev.push(KEY_A, 2)  # autorepeat while held
    dev.push(KEY_C, 1)
    assert reader.poll() == {"left": True, "right": True}
    dev.push(KEY_A, 0)
    assert reader.poll() == {"left": False, "right": True}


def test_one_key_for_both_arms_and_initial_state_from_active_keys():
    reader, dev, _ = make({"both": "KEY_C"}, FakeDevice(active=[KEY_C]))
    assert reader.levels() == {"left": True, "right": True}
    dev.push(KEY_C, 0)
    assert reader.poll() == {"left": False, "right": False}


def test_pedal_drives_arbiter_with_debounce():
    reader, dev, _ = make({"left": "KEY_A"})
    arb = AuthorityArbiter(AuthorityConfig(debounce_s=0.03))
    dev.push(KEY_A, 1)
    arb.update(reader.poll(), 0.00)
    dev.push(KEY_A, 0)  # contact bounce
    dev.push(KEY_A, 1)
    arb.update(reader.poll(), 0.01)
    assert arb.authority("left") == Authority.POLICY
    arb.update(reader.poll(), 0.05)
    assert arb.authority("left") == Authority.HUMAN


def test_unplugged_pedal_raises_lost_naming_device():
    reader, dev, _ = make({"left": "KEY_A"})
    dev.push(KEY_A, 1)
    reader.poll()
    dev.unplugged = True
    with pytest.raises(PedalLostError, match="usb-Foot-event-kbd.*unplugged"):
        reader.poll()
    assert not reader.connected


def test_missing_device_on_open_is_a_clear_error():
    def open_device(path):
        raise FileNotFoundError(errno.ENOENT, "No such file", path)

    reader = PedalReader(PedalConfig(device="/dev/input/event42"), open_device)
    with pytest.raises(PedalLostError, match="/dev/input/event42"):
        reader.open()


def test_keyboard_fallback_toggles_holds_and_resumes():
    arb = AuthorityArbiter(AuthorityConfig())
    kb = KeyboardCommands(arb)
    kb.handle("l", 0.0)
    assert arb.snapshot() == {"left": Authority.HUMAN, "right": Authority.POLICY}
    kb.handle("b", 0.1)
    assert arb.snapshot() == {"left": Authority.POLICY, "right": Authority.HUMAN}
    kb.handle("h", 0.2)
    assert set(arb.snapshot().values()) == {Authority.HOLD}
    kb.handle("r", 0.3)
    assert arb.authority("right") == Authority.HOLD
    kb.handle(" ", 0.4)
    assert set(arb.snapshot().values()) == {Authority.POLICY}
    kb.handle("q", 0.5)
    assert kb.quit_requested
