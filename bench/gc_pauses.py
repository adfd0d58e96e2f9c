"""A pytest plugin (a measurement, not a test): Python's garbage collections that took long, and
during which test. A collection holds the GIL, so it pauses every thread of the process, the
in-process graph's nodes included (docs/performance.md, "The first tick, and the collections").

    PYTHONPATH=bench python -m pytest -p gc_pauses -m "not slow and not hardware and not lerobot" \
        src/habc_trainer/test tests/test_cross_runtime.py tests/test_stalled_policy.py

prints, after the run, every collection over 10 ms: its generation, duration, thread, the objects
it could scan (tracked, not frozen) and the frozen ones (gc.freeze).
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass

import pytest

SLOW_S = 0.010


@dataclass(frozen=True)
class Pause:
    test: str
    generation: int
    seconds: float
    thread: str
    tracked: int
    frozen: int


class _Collections:
    def __init__(self) -> None:
        self.test = "(collection)"
        self.started: dict[int, float] = {}
        self.pauses: list[Pause] = []

    def __call__(self, phase: str, info: dict) -> None:
        ident = threading.get_ident()
        if phase == "start":
            self.started[ident] = time.perf_counter()
            return
        took = time.perf_counter() - self.started.pop(ident, time.perf_counter())
        if took > SLOW_S:
            # Counted after the collection, outside the timed part.
            self.pauses.append(
                Pause(
                    self.test,
                    int(info["generation"]),
                    took,
                    threading.current_thread().name,
                    len(gc.get_objects()),
                    gc.get_freeze_count(),
                )
            )


_COLLECTIONS = _Collections()


def pytest_configure(config: pytest.Config) -> None:
    gc.callbacks.append(_COLLECTIONS)


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    _COLLECTIONS.test = nodeid


def pytest_terminal_summary(terminalreporter) -> None:
    pauses = _COLLECTIONS.pauses
    terminalreporter.section(f"garbage collections over {SLOW_S * 1e3:.0f} ms: {len(pauses)}")
    for p in pauses:
        terminalreporter.write_line(
            f"gen{p.generation} {p.seconds * 1e3:6.1f} ms  {p.thread:<24} tracked {p.tracked:>7} "
            f"frozen {p.frozen:>7}  {p.test}"
        )
