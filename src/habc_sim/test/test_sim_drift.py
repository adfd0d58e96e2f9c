"""An untouched marker stays put: its contacts carry the rolling friction the scene declares."""

import pytest

from habc_sim.config import SimConfig
from habc_sim.drift import untouched_marker_drift
from habc_sim.env import PouchEnv

DRIFT_BOUND_M = 0.001  # measured 0.12 mm median, 0.21 mm max over 30 layouts; 72 mm at condim 4


@pytest.fixture(scope="module")
def env() -> PouchEnv:
    return PouchEnv(SimConfig(), obs_mode="state")


def test_untouched_marker_stays_put_on_many_layouts(env: PouchEnv):
    drifts = [untouched_marker_drift(env, seed, ticks=60) for seed in range(20)]
    worst = max(drifts, key=lambda d: d.distance_m)
    assert worst.distance_m < DRIFT_BOUND_M, worst
    assert not any(d.still_moving for d in drifts), [d for d in drifts if d.still_moving]


def test_drift_window_must_be_positive(env: PouchEnv):
    with pytest.raises(ValueError, match="ticks"):
        untouched_marker_drift(env, 0, ticks=0)
