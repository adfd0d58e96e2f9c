"""Bags extracted by a pool of processes, results in bag order (habc-convert --workers).

Extraction (bag reading, JPEG decoding, resampling) is per episode and CPU-bound; the store is
written by one process, in the order of the bags, so a parallel conversion gives the same store
as a serial one. With N workers the writing process extracts every N-th bag itself and N - 1
processes the others; at most two bags per helper are in flight: a fast pool never piles up
decoded episodes in memory while the writer catches up.
"""

from __future__ import annotations

import multiprocessing
import os
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
    # The parent extracts every `workers`-th bag itself, between writing: one process fewer to
    # start (each imports the bag reader) and to pickle episodes from, and the pool's start
    # overlaps the parent's first bag. spawn: the parent may hold threads (the progress bar's)
    # that a fork would copy mid-state.
    ctx = multiprocessing.get_context("spawn")
    helpers = workers - 1
    with ProcessPoolExecutor(max_workers=helpers, mp_context=ctx) as pool:
        futures: dict[int, Future] = {}
        theirs = (i for i in range(len(bags)) if i % workers)

        def top_up() -> None:
            while len(futures) < 2 * helpers:
                i = next(theirs, None)
                if i is None:
                    return
                futures[i] = pool.submit(extract_or_reason, bags[i], cfg)

        top_up()
        for i, bag in enumerate(bags):
            yield futures.pop(i).result() if i % workers else extract_or_reason(bag, cfg)
            top_up()
