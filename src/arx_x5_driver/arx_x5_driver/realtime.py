"""The control loop thread's scheduling: SCHED_FIFO, as ros2_control's controller manager asks
for its update loop.

Under the normal scheduler a tick that wakes while both cores are busy waits for one: with the
sim rig, three cameras and the recorder, 0.5-3.4 % of ticks overran on this 2-core machine
(bench/bench_graph.py, 3 runs), their slowest 42-87 ms. Under SCHED_FIFO the loop thread runs as
soon as it wakes, ahead of every normal thread: 0-0.5 %, slowest 26-40 ms, in 3 runs alternated
with those (docs/performance.md). It sleeps most of each period (a tick's mean is 12-14 ms of 33),
and the kernel's real-time throttling (sched_rt_runtime_us, 95 % of each second by default)
keeps a loop that never sleeps from starving the machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

FIFO_PRIORITY_MAX = 99  # Linux's highest SCHED_FIFO priority


def check_loop_priority(priority: int) -> int:
    """`priority` if it is 0 (the normal scheduler) or a SCHED_FIFO priority; else ValueError."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"loop_priority: {priority!r} is not an integer")
    if not 0 <= priority <= FIFO_PRIORITY_MAX:
        raise ValueError(
            f"loop_priority: {priority} outside 0..{FIFO_PRIORITY_MAX} (0: the normal scheduler)"
        )
    return priority


def request_fifo(
    priority: int,
    set_scheduler: Callable[[int, int, Any], None] | None = None,
) -> tuple[str, bool]:
    """Put the calling thread under SCHED_FIFO at `priority`; 0 leaves it as it is.

    (a line for the log, whether the thread got what was asked). A refusal (no right to
    real-time priority) is no error: the loop runs under the normal scheduler, and the line
    says how to allow it."""
    check_loop_priority(priority)
    if priority == 0:
        return "control loop: the normal scheduler (loop_priority 0)", True
    if set_scheduler is None:
        set_scheduler = getattr(os, "sched_setscheduler", None)
    if set_scheduler is None or not hasattr(os, "SCHED_FIFO"):
        return "control loop: the normal scheduler (SCHED_FIFO is Linux only)", False
    try:
        # pid 0: the calling thread (Linux schedules threads, not processes).
        set_scheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        return (
            f"control loop: SCHED_FIFO priority {priority} refused ({exc.strerror or exc}), "
            "the normal scheduler instead: ticks may wait for a core on a busy machine. Allow "
            f"it with `@realtime - rtprio {FIFO_PRIORITY_MAX}` in /etc/security/limits.conf "
            "(user in group realtime, log in again), or set loop_priority 0 to silence this"
        ), False
    return f"control loop: SCHED_FIFO priority {priority}", True
