"""Runs the task graph on a process pool; resumable, with a progress file after every task.

Finished tasks (their record is on disk) are skipped, so rerunning the same command after a
crash or a stop continues where it was. A failed task is logged with its traceback and its
dependents are not started; everything else still runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from habc_benchmark.plan import Task, execute
from habc_benchmark.stages import read_json, write_json


def _run(task: Task) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    out = execute(task)
    return out, time.perf_counter() - t0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Runner:
    def __init__(
        self,
        tasks: list[Task],
        workers: int,
        progress_path: Path,
        log: Callable[[str], None] = print,
    ) -> None:
        keys = [t.key for t in tasks]
        if len(set(keys)) != len(keys):
            raise ValueError("tasks: duplicate keys")
        known = set(keys)
        for t in tasks:
            missing = [d for d in t.deps if d not in known]
            if missing:
                raise ValueError(f"task {t.key}: unknown dependencies {missing}")
        self.tasks = {t.key: t for t in tasks}
        self.workers = workers
        self.progress_path = progress_path
        self.log = log
        self.status: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}

    def _write_progress(self) -> None:
        # Other runs share this file (`--tracks pixel` next to `--tracks state`, or one after
        # the other): merge under a lock so no run drops the tasks, and timings, of another.
        with _locked(self.progress_path):
            tasks = dict((read_json(self.progress_path) or {}).get("tasks", {}))
            tasks.update(self.status)
            counts: dict[str, int] = {}
            for s in tasks.values():
                counts[s["state"]] = counts.get(s["state"], 0) + 1
            write_json(self.progress_path, {"counts": counts, "tasks": tasks})

    def run(self) -> dict[str, dict[str, Any]]:
        pending = dict(self.tasks)
        done: set[str] = set()
        failed: set[str] = set()
        # keep the timings of tasks an earlier (interrupted) run finished
        before = (read_json(self.progress_path) or {}).get("tasks", {})
        for key, t in list(pending.items()):
            if t.finished():
                done.add(key)
                old = before.get(key, {})
                self.status[key] = (
                    old if old.get("state") == "done" else {"state": "done", "resumed": True}
                )
                del pending[key]
        for key in pending:
            self.status[key] = {"state": "pending"}
        if done:
            self.log(f"resuming: {len(done)} of {len(self.tasks)} tasks already finished")
        self._write_progress()
        if self.workers == 1:
            self._serial(pending, done, failed)
        else:
            self._parallel(pending, done, failed)
        self._write_progress()
        return self.status

    def _ready(self, pending: dict[str, Task], done: set[str], failed: set[str]) -> list[Task]:
        for key, t in list(pending.items()):
            if any(d in failed for d in t.deps):
                failed.add(key)
                self.status[key] = {"state": "blocked", "by": [d for d in t.deps if d in failed]}
                del pending[key]
        ready = [t for t in pending.values() if all(d in done for d in t.deps)]
        return sorted(ready, key=lambda t: t.priority)

    def _finish(
        self, task: Task, ok: bool, result: Any, wall: float, done: set[str], failed: set[str]
    ) -> None:
        span = {"started": self.started.get(task.key), "ended": time.time()}
        if ok:
            done.add(task.key)
            self.status[task.key] = {"state": "done", "wall_s": wall, "result": result} | span
            self.log(f"done   {task.describe()} ({wall:.0f} s)")
        else:
            failed.add(task.key)
            self.status[task.key] = {"state": "failed", "error": result} | span
            self.log(f"FAILED {task.describe()}:\n{result}")
        self._write_progress()

    def _serial(self, pending: dict[str, Task], done: set[str], failed: set[str]) -> None:
        while True:
            ready = self._ready(pending, done, failed)
            if not ready:
                break
            task = pending.pop(ready[0].key)
            self.started[task.key] = time.time()
            self.log(f"start  {task.describe()}")
            t0 = time.perf_counter()
            try:
                result, wall = _run(task)
                self._finish(task, True, result, wall, done, failed)
            except Exception:  # noqa: BLE001 - one failed cell must not stop the grid
                self._finish(
                    task, False, traceback.format_exc(), time.perf_counter() - t0, done, failed
                )

    def _parallel(self, pending: dict[str, Task], done: set[str], failed: set[str]) -> None:
        running: dict[Future, Task] = {}
        # spawn: workers must not inherit torch / MuJoCo state from a forked parent
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            while True:
                for task in self._ready(pending, done, failed):
                    if len(running) >= self.workers:
                        break
                    del pending[task.key]
                    self.started[task.key] = time.time()
                    self.status[task.key] = {"state": "running", "since": self.started[task.key]}
                    self.log(f"start  {task.describe()}")
                    running[pool.submit(_run, task)] = task
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = running.pop(fut)
                    try:
                        result, wall = fut.result()
                        self._finish(task, True, result, wall, done, failed)
                    except Exception:  # noqa: BLE001 - one failed cell must not stop the grid
                        self._finish(task, False, traceback.format_exc(), 0.0, done, failed)
