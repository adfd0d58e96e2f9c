"""Bags extracted by a pool of processes, results in bag order (habc-convert --workers).

Extraction (bag reading, JPEG decoding, resampling) is per episode and CPU-bound; the store is
written by one process, in the order of the bags, so a parallel conversion gives the same store
as a serial one. At most two bags per worker are in flight: a fast pool never piles up decoded
episodes in memory while the writer catches up.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from habc_core.cli import one_line
from habc_trainer.episode import Episode, EpisodeError, ExtractConfig, extract_episode

# Below this many bags a pool costs more to start (each worker imports the bag reader) than
# it saves.
MIN_BAGS_PER_POOL = 4


def extract_or_reason(bag: Path, cfg: ExtractConfig) -> tuple[Episode | None, str | None]:
    """The episode of one bag, or why it is skipped (one line; never raises for a bad bag)."""
    try:
        return extract_episode(bag, cfg), None
    except EpisodeError as exc:  # the contract says what is wrong
        return None, one_line(exc)
    except Exception as exc:  # noqa: BLE001 - one bad bag never aborts the run
        return None, (
            f"{bag}: internal error while converting this bag (a bug in habc_trainer; please "
            f"report it): {type(exc).__name__}: {one_line(exc)}"
        )


def worker_count(requested: int, bags: int) -> int:
    """`requested` workers (0: one per core), never more than there are bags; 1 = in process."""
    if requested < 0:
        raise ValueError(f"workers: must be >= 0 (0 = one per core), got {requested}")
    n = requested or (os.cpu_count() or 1)
    if requested == 0 and bags < MIN_BAGS_PER_POOL:
        return 1
    return max(1, min(n, bags))


def extracted(
    bags: Sequence[Path], cfg: ExtractConfig, workers: int
) -> Iterator[tuple[Episode | None, str | None]]:
    """`extract_or_reason` of every bag, in order; with `workers` > 1 in a process pool."""
    if workers <= 1:
        for bag in bags:
            yield extract_or_reason(bag, cfg)
        return
    # spawn: the parent may hold threads (the progress bar's) that a fork would copy mid-state.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: deque[Future] = deque()
        it = iter(bags)
        for bag in it:
            pending.append(pool.submit(extract_or_reason, bag, cfg))
            if len(pending) >= 2 * workers:
                break
        while pending:
            yield pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(extract_or_reason, nxt, cfg))
