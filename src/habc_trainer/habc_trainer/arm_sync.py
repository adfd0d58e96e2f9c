"""Pair one arm's commands with the control clock of the other (episode-format.md "Frames").

The clock is the clock arm's command ticks. The arm driver and the DDS-free collector stamp both
arms of one tick with the same time, so when the other arm's header stamps are the clock arm's
stamps a tick is paired with the command of identical stamp, however far apart their log times
are (a loaded graph delivers them 30-80 ms apart). Bags from other recorders stamp each arm on
its own; there a tick takes the other arm's command nearest in log time. Neither way refuses a
skew: only a hole longer than `max_gap_ns` in the middle of the episode is an error, and ticks
at the start or the end where the other arm has no command yet / any more are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

PairingMode = Literal["stamp", "log_time"]
PAIRING_MODES: tuple[str, ...] = ("stamp", "log_time")


@dataclass(frozen=True)
class Pairing:
    """The other arm's command per clock tick (arrays of length n = number of ticks).

    `index[i]` is the paired command of tick i (-1 where none); ticks `[lead, n - trail)` are
    kept; `gaps` are the kept-range ticks with no command within the gap bound (errors), with
    their distance to the nearest usable command in `gap_ns`.
    """

    mode: PairingMode
    index: np.ndarray  # (n,) int64
    lead: int
    trail: int
    gaps: np.ndarray  # (k,) int64 tick indices
    gap_ns: np.ndarray  # (k,) int64


def same_tick_stamps(clock_stamps: np.ndarray, stamps: np.ndarray) -> bool:
    """True when the other arm is stamped with the clock arm's tick times.

    Both stamp sequences must be strictly increasing and nonzero (a recorder that leaves stamps
    at 0 or repeats them cannot pair by stamp), and at least half of the shorter sequence must
    be shared: independent clocks essentially never agree to the nanosecond, while a few lost
    messages on either arm must not switch a stamped bag to log-time pairing.
    """
    if len(clock_stamps) == 0 or len(stamps) == 0:
        return False
    for s in (clock_stamps, stamps):
        if (s <= 0).any() or (np.diff(s) <= 0).any():
            return False
    shared = np.intersect1d(clock_stamps, stamps, assume_unique=True).size
    return 2 * shared >= min(len(clock_stamps), len(stamps))


def pair_commands(
    clock_times: np.ndarray,
    clock_stamps: np.ndarray,
    times: np.ndarray,
    stamps: np.ndarray,
    max_gap_ns: float,
) -> Pairing:
    """Pair each clock tick with one of the other arm's commands (see module docstring).

    All inputs are int64 ns, sorted; `times` must be non-empty. Stamp pairing: a tick without a
    command of its stamp (a lost message) in the middle takes the other arm's newest earlier
    command, which the arm was still holding, if its stamp is within `max_gap_ns`. Log-time
    pairing: the nearest command in log time, if within `max_gap_ns`.
    """
    n = len(clock_times)
    if same_tick_stamps(clock_stamps, stamps):
        mode: PairingMode = "stamp"
        pos = np.clip(np.searchsorted(stamps, clock_stamps), 0, len(stamps) - 1)
        paired = stamps[pos] == clock_stamps
        prev = np.searchsorted(stamps, clock_stamps, side="right") - 1
        fill_ns = clock_stamps - stamps[np.maximum(prev, 0)]
        index = np.where(paired, pos, np.where(prev >= 0, prev, -1))
        dist = np.where(paired, 0, np.where(prev >= 0, fill_ns, np.iinfo(np.int64).max))
    else:
        mode = "log_time"
        right = np.clip(np.searchsorted(times, clock_times), 0, len(times) - 1)
        left = np.clip(right - 1, 0, len(times) - 1)
        closer_left = np.abs(times[left] - clock_times) <= np.abs(times[right] - clock_times)
        index = np.where(closer_left, left, right)
        dist = np.abs(times[index] - clock_times)
        paired = dist <= max_gap_ns
    if not paired.any():
        return Pairing(mode, index.astype(np.int64), n, 0, np.zeros(0, np.int64), dist[:0])
    lead = int(np.argmax(paired))
    last = n - 1 - int(np.argmax(paired[::-1]))
    inside = np.arange(lead, last + 1)
    bad = inside[dist[inside] > max_gap_ns]
    index = np.where(np.arange(n) < lead, -1, np.where(np.arange(n) > last, -1, index))
    return Pairing(mode, index.astype(np.int64), lead, n - 1 - last, bad, dist[bad])


def skew_stats_ms(offsets_ns: np.ndarray) -> dict[str, float]:
    """Median, p95 and max of |log-time offset| between ticks and paired commands, in ms."""
    if len(offsets_ns) == 0:
        return {"median": 0.0, "p95": 0.0, "max": 0.0}
    a = np.abs(offsets_ns.astype(np.float64)) / 1e6
    return {
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
    }
