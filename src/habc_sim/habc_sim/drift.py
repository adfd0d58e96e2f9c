"""Untouched-object drift: how far a free object moves when nothing touches it.

A real marker lying on a table stays where it is. In MuJoCo a free cylinder keeps rolling unless
its contacts carry rolling friction (condim 6), so this is the check that the physics obeys the
friction model the scene declares (scripts/measure_object_drift.py, test_sim_drift.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from habc_sim.env import PouchEnv

STILL_SPEED = 1e-3  # m/s: slower than this at the end of the window counts as at rest


@dataclass(frozen=True)
class Drift:
    seed: int
    distance_m: float  # marker centre displacement over the window, in the table plane
    final_speed_m_s: float  # marker speed at the end of the window

    @property
    def still_moving(self) -> bool:
        return self.final_speed_m_s > STILL_SPEED


def untouched_marker_drift(env: PouchEnv, seed: int, ticks: int) -> Drift:
    """Reset to layout `seed`, hold both arms for `ticks` control ticks, measure the marker."""
    if ticks < 1:
        raise ValueError(f"ticks: must be >= 1, got {ticks!r}")
    env.reset(seed)
    start = env.rig.marker_pos().copy()
    prev = start
    for _ in range(ticks):
        prev = env.rig.marker_pos().copy()
        env.step(None, images=False)
    end = env.rig.marker_pos()
    speed = float(np.linalg.norm(end - prev)) * env.control_hz
    return Drift(seed, float(np.linalg.norm((end - start)[:2])), speed)
