"""Bags extracted by a pool of processes, results in bag order (habc-convert --workers).

Extraction (bag reading, JPEG decoding, resampling) is per episode and CPU-bound; the store is
written by one process, in the order of the bags, so a parallel conversion gives the same store
as a serial one. With N workers, N - 1 helper processes and the writing process itself take the
next bag nobody has taken from one shared counter whenever they are free: the writer extracts
while the helpers start (0.3 s of imports each) and whenever the next bag to write is still
being extracted, and at the end no process waits for another's queue. A bag taken holds one of
2 N + 1 credits until it is written: memory never holds more decoded episodes than that, however
far the helpers run ahead of the writer.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from multiprocessing.connection import wait as wait_for_any
from pathlib import Path
from typing import Any

from habc_core.cli import one_line
from habc_trainer.episode import Episode, EpisodeError, ExtractConfig, extract_episode
from habc_trainer.episode_transfer import receive_result, send_result

# Credits: two per process (the bag it extracts, and one finished waiting for its turn to be
# written) and this many more (the writer's own, extracted ahead).
SPARE_CREDITS = 1
# How often the writer, waiting for a helper's episode, checks that the helpers are alive, and
# a helper waiting for a credit that the writer is.
_POLL_S = 0.5
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
    """`extract_or_reason` of every bag, in order; with `workers` > 1 in that many processes."""
    if workers <= 1:
        for bag in bags:
            yield extract_or_reason(bag, cfg)
        return
    # spawn: the parent may hold threads (the progress bar's, the store's sync) that a fork
    # would copy mid-state.
    ctx = multiprocessing.get_context("spawn")
    taken = ctx.Value("q", 0)  # bags [0, taken) are taken
    credits = ctx.Semaphore(2 * workers + SPARE_CREDITS)
    helpers, conns = [], []
    for _ in range(workers - 1):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=_helper, args=(list(bags), cfg, taken, credits, theirs), daemon=True
        )
        proc.start()
        theirs.close()  # the helper's end lives in the helper: its exit is our EOF
        helpers.append(proc)
        conns.append(mine)
    ready: dict[int, tuple[Episode | None, str | None]] = {}
    try:
        for i in range(len(bags)):
            while i not in ready:
                _receive(conns, ready, helpers, bags[i], wait=False)
                if i in ready:
                    break
                if credits.acquire(block=False):
                    j = _take(taken, len(bags))
                    if j is not None:
                        ready[j] = extract_or_reason(bags[j], cfg)
                        continue
                    credits.release()
                _receive(conns, ready, helpers, bags[i], wait=True)
            yield ready.pop(i)
            credits.release()
    finally:
        for proc in helpers:
            if proc.is_alive():  # only when the caller stopped early or something failed
                proc.terminate()
        for proc in helpers:
            proc.join()
        for conn in conns:
            conn.close()


def _take(taken: Any, n: int) -> int | None:
    """The next bag nobody has taken (marking it taken), or None when all are."""
    with taken.get_lock():
        i = taken.value
        if i >= n:
            return None
        taken.value = i + 1
        return i


def _helper(bags: list[Path], cfg: ExtractConfig, taken: Any, credits: Any, conn: Any) -> None:
    writer = os.getppid()
    while True:
        while not credits.acquire(timeout=_POLL_S):
            if os.getppid() != writer:  # the writer was killed: nobody will release one
                return
        i = _take(taken, len(bags))
        if i is None:
            credits.release()
            break
        episode, reason = extract_or_reason(bags[i], cfg)
        try:
            send_result(conn, i, episode, reason)
        except (OSError, EOFError):
            break  # the writer is gone
        except Exception as exc:  # noqa: BLE001 - one that cannot be sent is a reason, not a hang
            why = f"{bags[i]}: internal error while sending this bag's episode ({exc!r})"
            send_result(conn, i, None, why)
    conn.close()


def _receive(
    conns: list[Any],
    ready: dict[int, tuple[Episode | None, str | None]],
    helpers: list[Any],
    waiting_for: Path,
    *,
    wait: bool,
) -> None:
    """Every helper's result already sent into `ready`, or with `wait` at least one within
    _POLL_S (a helper that died meanwhile is an error). A helper that has finished closes its
    connection, which leaves `conns`."""
    received = False
    for conn in wait_for_any(conns, timeout=_POLL_S if wait else 0) if conns else []:
        try:
            i, episode, reason = receive_result(conn)
        except EOFError:
            conns.remove(conn)
            conn.close()
            continue
        ready[i] = (episode, reason)
        received = True
    if wait and not received:
        dead = [p.exitcode for p in helpers if p.exitcode not in (None, 0)]
        if dead or not conns:
            raise RuntimeError(
                f"habc-convert: a worker process died (exit codes {dead or 'all 0'}) while the "
                f"writer waited for {waiting_for}; rerun with --workers 1 to see its error"
            )
