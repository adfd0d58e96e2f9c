"""The newest value of each input with the time it arrived, and which inputs went stale. No rclpy.

The policy node keeps the last image of every camera; a camera that stops publishing (cable,
driver crash) would otherwise leave the policy acting on a frozen picture of the scene forever.
An image older than `timeout_s` is dropped from the observation: a policy that needs it fails
its inference and the mux holds the arms; one that does not (state mode) acts on.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

# 15 frames at 30 Hz: a missed frame or two is jitter, half a second is a camera gone.
IMAGE_TIMEOUT_S = 0.5


class LatestInputs:
    def __init__(self, timeout_s: float = IMAGE_TIMEOUT_S) -> None:
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"image_timeout_s: must be a number > 0, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self._values: dict[Hashable, tuple[Any, float]] = {}
        self._reported: set[Hashable] = set()

    def put(self, key: Hashable, value: Any, now: float) -> None:
        self._values[key] = (value, now)

    def fresh(self, now: float) -> dict[Hashable, Any]:
        """Every input that arrived within `timeout_s` of `now`."""
        return {k: v for k, (v, t) in self._values.items() if now - t <= self.timeout_s}

    def arrivals(self, now: float) -> dict[Hashable, float]:
        """When each input of `fresh(now)` arrived: an observation built now ages while it
        waits for inference, and is checked again against these times when it is used."""
        return {k: t for k, (_v, t) in self._values.items() if now - t <= self.timeout_s}

    def stale(self, now: float) -> list[Hashable]:
        """Inputs heard before but silent for longer than `timeout_s`."""
        return [k for k, (_v, t) in self._values.items() if now - t > self.timeout_s]

    def newly_stale(self, now: float) -> list[Hashable]:
        """Inputs that went stale since the last call (report once, not every tick); an input
        that comes back is reported again if it stops again."""
        stale = set(self.stale(now))
        new = sorted(stale - self._reported, key=str)
        self._reported = stale
        return new
