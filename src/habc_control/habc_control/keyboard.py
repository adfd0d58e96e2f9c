"""Keyboard fallback for the pedal: single key presses in the operator's terminal. No rclpy.

A terminal reports presses, not releases, so the keyboard works in toggle style:

    l  toggle left arm POLICY <-> HUMAN       r  toggle right arm
    b  toggle both arms                       h  HOLD every arm (latched)
    space  resume from HOLD                   q  quit

`KeyboardCommands.handle(ch, now)` applies one key to an AuthorityArbiter.
"""

from __future__ import annotations

from dataclasses import dataclass

from habc_control.authority import Authority, AuthorityArbiter, AuthorityChange

HELP = (
    "keys: l = toggle left, r = toggle right, b = toggle both, h = HOLD all, "
    "space = resume from HOLD, q = quit"
)


@dataclass
class KeyboardCommands:
    arbiter: AuthorityArbiter
    source: str = "keyboard"
    quit_requested: bool = False

    def handle(self, ch: str, now: float) -> list[AuthorityChange]:
        arb = self.arbiter
        if ch == "q":
            self.quit_requested = True
            return []
        if ch == "h":
            return arb.hold_all(now, self.source, "operator pressed h")
        if ch == " ":
            return arb.resume(now, self.source)
        targets = {"l": ("left",), "r": ("right",), "b": arb.arms}.get(ch)
        if targets is None:
            return []
        changes: list[AuthorityChange] = []
        for arm in targets:
            if arm not in arb.arms:
                continue
            now_auth = arb.authority(arm)
            flip = Authority.POLICY if now_auth == Authority.HUMAN else Authority.HUMAN
            changes += arb.request(arm, flip, now, self.source)
        return changes
