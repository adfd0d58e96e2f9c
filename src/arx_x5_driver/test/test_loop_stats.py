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


def test_thread_times_tell_work_from_a_blocked_wait():
    """A slow tick is diagnosed from these: a busy loop shows as CPU, a sleep as neither CPU
    nor a wait for a core (the thread was blocked, not runnable)."""
    import time

    from arx_x5_driver.loop_stats import ThreadTimes

    times = ThreadTimes()
    try:
        cpu0, wait0 = times.now()
        # Busy until this thread has run 50 ms of CPU by Python's own clock of it (on a loaded
        # machine that takes longer than 50 ms of wall time).
        thread_cpu0, give_up = time.thread_time(), time.monotonic() + 5.0
        while time.thread_time() - thread_cpu0 < 0.05 and time.monotonic() < give_up:
            pass
        thread_cpu = time.thread_time() - thread_cpu0
        cpu1, wait1 = times.now()
        time.sleep(0.1)
        cpu2, wait2 = times.now()
    finally:
        times.close()
    assert abs((cpu1 - cpu0) - thread_cpu) < 0.01  # the busy loop, on this thread's CPU
    assert cpu2 - cpu1 < 0.02  # the sleep did not
    if wait0 is not None:  # Linux: schedstat gives the run-queue wait too
        assert wait1 >= wait0 and wait2 - wait1 < 0.05  # asleep is not waiting for a core
