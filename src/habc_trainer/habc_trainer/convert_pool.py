"""Bags extracted by a pool of threads and processes, in bag order (habc-convert --workers).

Extraction (bag reading, JPEG decoding, resampling) is per episode and CPU-bound; the store is
written by one process, in the order of the bags, so a parallel conversion gives the same store
as a serial one.

Four fifths of a bag's time are cv2's JPEG decode and resize, which release the GIL, so two
threads of one process keep two cores busy: on the 2-core development machine they convert 16
bags 13-17 % faster than the writer and one spawned helper did (a helper costs 0.6 s of CPU to
start, and each of its episodes crosses to the writer as a memory file), and 48 bags as fast
(docs/performance.md, "Conversion"). The rest, reading and deserialising in Python, holds the
GIL, so many threads of one process would queue for it: N workers are THREADS_PER_PROCESS
threads in the writing process and as many in each of the ceil(N / THREADS_PER_PROCESS) - 1
helper processes it spawns.

Every thread takes the next bag nobody has taken from one shared counter whenever it is free,
so no thread waits for another's queue. A bag taken holds one of 2 N + 1 credits until it is
written: memory never holds more decoded episodes than that, however far the extraction runs
ahead of the writer.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import wait as wait_for_any
from pathlib import Path
from typing import Any

from habc_core.cli import one_line
from habc_trainer.episode import Episode, EpisodeError, ExtractConfig, extract_episode
from habc_trainer.episode_transfer import receive_result, send_result

Result = tuple[Episode | None, str | None]

# Extraction threads per process (see the module docstring).
THREADS_PER_PROCESS = 2
# Credits: two per worker (the bag it extracts, and one finished waiting for its turn to be
# written) and this many more (one extracted ahead).
SPARE_CREDITS = 1
# How often a wait checks that the others are alive: the writer waiting for an episode, its
# helpers', a thread waiting for a credit, that the writer still wants it.
_POLL_S = 0.5
# Below this many bags a helper process costs more to start (it imports the bag reader: 0.6 s
# of CPU) than it saves; one per core is then the writing process's threads alone.
MIN_BAGS_PER_POOL = 4


def extract_or_reason(bag: Path, cfg: ExtractConfig) -> Result:
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
        n = min(n, THREADS_PER_PROCESS)
    return max(1, min(n, bags))


def threads_per_process(workers: int) -> list[int]:
    """How `workers` extraction threads are spread: the writing process's first, then one
    entry per helper process (as even as THREADS_PER_PROCESS allows)."""
    processes = -(-workers // THREADS_PER_PROCESS)
    return [workers // processes + (k < workers % processes) for k in range(processes)]


def extracted(bags: Sequence[Path], cfg: ExtractConfig, workers: int) -> Iterator[Result]:
    """`extract_or_reason` of every bag, in order; with `workers` > 1 on that many threads."""
    if workers <= 1:
        for bag in bags:
            yield extract_or_reason(bag, cfg)
        return
    spread = threads_per_process(workers)
    # spawn: the parent may hold threads (the progress bar's, the store's sync, the pool's
    # own) that a fork would copy mid-state.
    ctx = multiprocessing.get_context("spawn")
    taken = ctx.Value("q", 0)  # bags [0, taken) are taken
    credits = ctx.Semaphore(2 * workers + SPARE_CREDITS)
    helpers, conns = [], []
    for threads in spread[1:]:
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=_helper,
            args=(list(bags), cfg, taken, credits, theirs, threads),
            daemon=True,
        )
        proc.start()
        theirs.close()  # the helper's end lives in the helper: its exit is our EOF
        helpers.append(proc)
        conns.append(mine)
    local = _Extractors(list(bags), cfg, taken, credits, spread[0])
    waitables: list[Any] = [*conns, local.wakeup]
    ready: dict[int, Result] = {}
    try:
        for i in range(len(bags)):
            while i not in ready:
                _receive(waitables, ready, helpers, bags[i], local)
            yield ready.pop(i)
            credits.release()
    finally:
        local.stop()
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


def _next_bag(taken: Any, credits: Any, n: int, wanted: Callable[[], bool]) -> int | None:
    """A credit and the next bag to extract with it; None when every bag is taken or, while
    waiting for a credit, `wanted()` turns false."""
    while not credits.acquire(timeout=_POLL_S):
        if not wanted():
            return None
    i = _take(taken, n) if wanted() else None
    if i is None:
        credits.release()
    return i


class _Extractors:
    """The writing process's extraction threads. Their results wait in `collect`; each one
    writes a byte to `wakeup` (a pipe the writer waits on with the helpers' connections)."""

    def __init__(
        self, bags: list[Path], cfg: ExtractConfig, taken: Any, credits: Any, threads: int
    ) -> None:
        self._bags, self._cfg, self._taken, self._credits = bags, cfg, taken, credits
        self._results: dict[int, Result] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self.wakeup, self._wake = os.pipe()
        self._threads = [
            threading.Thread(target=self._run, name=f"convert-{k}", daemon=True)
            for k in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        try:
            while True:
                i = _next_bag(self._taken, self._credits, len(self._bags), self._still_wanted)
                if i is None:
                    return
                result = extract_or_reason(self._bags[i], self._cfg)
                with self._lock:
                    self._results[i] = result
                os.write(self._wake, b"r")
        except BaseException as exc:  # noqa: BLE001 - the writer raises it (no silent hang)
            with self._lock:
                self._failure = self._failure or exc
            os.write(self._wake, b"x")

    def _still_wanted(self) -> bool:
        return not self._stopping.is_set()

    def collect(self, ready: dict[int, Result]) -> None:
        """Move the finished results into `ready`; a thread's failure is raised here."""
        with self._lock:
            ready.update(self._results)
            self._results.clear()
            if self._failure is not None:
                raise RuntimeError(
                    f"habc-convert: an extraction thread failed: {one_line(self._failure)}"
                ) from self._failure

    def busy(self) -> bool:
        """Whether a thread may still deliver a result (a finished one has woken the writer)."""
        return any(thread.is_alive() for thread in self._threads)

    def drain_wakeup(self) -> None:
        os.read(self.wakeup, 4096)

    def stop(self) -> None:
        """Let no thread take another bag, and wait for those extracting one."""
        self._stopping.set()
        for thread in self._threads:
            thread.join()
        os.close(self.wakeup)
        os.close(self._wake)


def _helper(
    bags: list[Path], cfg: ExtractConfig, taken: Any, credits: Any, conn: Any, threads: int
) -> None:
    writer = os.getppid()
    sending = threading.Lock()  # one episode on the connection at a time
    gone = threading.Event()

    def wanted() -> bool:
        # The writer was killed: nobody will release a credit.
        return not gone.is_set() and os.getppid() == writer

    def work() -> None:
        try:
            extract_and_send()
        except BaseException:  # noqa: BLE001 - a lost episode must not leave the writer waiting
            os._exit(70)  # the whole helper: the writer sees a dead worker and says so

    def extract_and_send() -> None:
        while True:
            i = _next_bag(taken, credits, len(bags), wanted)
            if i is None:
                return
            episode, reason = extract_or_reason(bags[i], cfg)
            with sending:
                if gone.is_set():
                    return
                try:
                    send_result(conn, i, episode, reason)
                except (OSError, EOFError):
                    gone.set()  # the writer is gone
                    return
                except Exception as exc:  # noqa: BLE001 - one that cannot be sent is a reason
                    why = f"{bags[i]}: internal error while sending this bag's episode ({exc!r})"
                    send_result(conn, i, None, why)

    others = [threading.Thread(target=work, daemon=True) for _ in range(threads - 1)]
    for thread in others:
        thread.start()
    work()
    for thread in others:
        thread.join()
    conn.close()


def _receive(
    waitables: list[Any],
    ready: dict[int, Result],
    helpers: list[Any],
    waiting_for: Path,
    local: _Extractors | None = None,
) -> None:
    """The results sent so far into `ready`, waiting up to _POLL_S for one; none by then, a
    helper that died meanwhile or no one left to extract is an error. `waitables`: the helpers'
    connections and the local threads' wakeup pipe (an int); a helper that has finished closes
    its connection, which leaves the list."""
    received = False
    for source in wait_for_any(waitables, timeout=_POLL_S) if waitables else []:
        if local is not None and source == local.wakeup:
            local.drain_wakeup()
            before = len(ready)
            local.collect(ready)
            received = received or len(ready) > before
            continue
        try:
            i, episode, reason = receive_result(source)
        except EOFError:
            waitables.remove(source)
            source.close()
            continue
        ready[i] = (episode, reason)
        received = True
    if not received:
        dead = [p.exitcode for p in helpers if p.exitcode not in (None, 0)]
        connected = [w for w in waitables if not isinstance(w, int)]
        nobody = not connected and (local is None or not local.busy())
        if dead or nobody:
            raise RuntimeError(
                f"habc-convert: a worker process died (exit codes {dead or 'all 0'}) while the "
                f"writer waited for {waiting_for}; rerun with --workers 1 to see its error"
            )
