"""The control loop's timing, as a distribution: tick periods, per-second rates, command age.

Pure Python (no rclpy): the arm driver feeds it and logs `summary()` at its end of run, which
bench/bench_graph.py reads. Samples are kept in bounded rings (the last hour at 30 Hz), so a
driver that runs for days holds a fixed amount.

The graph's observation -> command latency comes in two legs, each measured where both of its
ends are known: the policy node stamps each row with the joint_states stamp of the tick it
answers and the mux measures observation -> its request (`LatencySamples` in the mux node); the
driver measures the mux's request stamp -> the tick that executes it (`command_age` here).
The request's own stamp stays its publication time: the bag's command_request stamps must
increase (episode-format.md).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

RING = 108_000  # one hour of ticks at 30 Hz


class LatencySamples:
    """A bounded ring of latencies [s] and their p50 / p99 in one line."""

    def __init__(self, label: str, ring: int = RING) -> None:
        self.label = label
        self._samples: deque[float] = deque(maxlen=ring)

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)

    def __len__(self) -> int:
        return len(self._samples)

    def summary(self) -> str:
        if not self._samples:
            return f"{self.label}: none"
        a = 1e3 * np.asarray(self._samples)
        return (
            f"{self.label} p50 {np.percentile(a, 50):.1f} / p99 {np.percentile(a, 99):.1f} ms "
            f"over {len(a)}"
        )


class ThreadTimes:
    """The opening thread's CPU time and its wait for a core (the run queue) so far [s].

    Both come from Linux's /proc/thread-self/schedstat, opened once by the thread they describe
    (the open file keeps describing it, whoever reads it); elsewhere the wait is None and the
    CPU time is `time.thread_time()` of the caller. A slow tick with little of either was
    blocked: on a lock, the GIL, a write that waits."""

    def __init__(self) -> None:
        try:
            self._file: Any = open("/proc/thread-self/schedstat", "rb", buffering=0)  # noqa: SIM115
        except OSError:
            self._file = None

    def now(self) -> tuple[float, float | None]:
        if self._file is None:
            return time.thread_time(), None
        self._file.seek(0)
        cpu_ns, wait_ns, *_rest = self._file.read().split()
        return int(cpu_ns) * 1e-9, int(wait_ns) * 1e-9

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class LoopStats:
    def __init__(self, hz: float, ring: int = RING) -> None:
        if hz <= 0:
            raise ValueError(f"hz: expected > 0, got {hz!r}")
        self.hz = hz
        self._periods: deque[float] = deque(maxlen=ring)
        self.ages = LatencySamples("POLICY command age (mux request -> executed)", ring)
        self._window_rates: deque[float] = deque(maxlen=ring)
        self._last_start: float | None = None
        self._window_start: float | None = None
        self._window_ticks = 0

    def tick_started(self, t: float) -> None:
        """A tick began at monotonic time `t` [s]."""
        if self._last_start is not None:
            self._periods.append(t - self._last_start)
        self._last_start = t
        if self._window_start is None:
            self._window_start = t
        elif t - self._window_start >= 1.0:
            self._window_rates.append(self._window_ticks / (t - self._window_start))
            self._window_start, self._window_ticks = t, 0
        self._window_ticks += 1

    def command_age(self, age_s: float) -> None:
        """A POLICY command executed `age_s` after the mux requested it."""
        self.ages.add(age_s)

    def summary(self) -> str:
        """One line: tick period p50 / p99 / max, the slowest 1-s window, command age."""
        parts = []
        if self._periods:
            p = 1e3 * np.asarray(self._periods)
            parts.append(
                f"tick period p50 {np.percentile(p, 50):.1f} / p99 {np.percentile(p, 99):.1f} / "
                f"max {p.max():.1f} ms"
            )
        if self._window_rates:
            parts.append(f"slowest 1-s window {min(self._window_rates):.1f} Hz")
        if len(self.ages):
            parts.append(self.ages.summary())
        return "; ".join(parts) if parts else "no ticks"
