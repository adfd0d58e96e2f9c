import pytest

from arx_x5_driver.loop_stats import LatencySamples, LoopStats


def test_the_summary_gives_the_tick_period_distribution_the_slowest_second_and_command_age():
    stats = LoopStats(30.0)
    t = 0.0
    for k in range(90):  # three seconds at 30 Hz, one tick 100 ms late in the second
        t += 0.1 if k == 45 else 1 / 30
        stats.tick_started(t)
    for age in (0.030, 0.040, 0.050):
        stats.command_age(age)
    line = stats.summary()
    assert "tick period p50 33.3 / p99" in line and "max 100.0 ms" in line
    assert "slowest 1-s window 28.0 Hz" in line  # 28 ticks in the second with the stall
    assert "POLICY command age (mux request -> executed) p50 40.0 /" in line and "over 3" in line


def test_samples_are_bounded_and_an_empty_one_says_so():
    ring = LatencySamples("leg", ring=4)
    assert ring.summary() == "leg: none"
    for k in range(10):
        ring.add(k * 1e-3)
    assert len(ring) == 4 and "p50 7.5" in ring.summary()
    with pytest.raises(ValueError, match="hz"):
        LoopStats(0.0)
