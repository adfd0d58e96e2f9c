"""Fixtures shared by every package's ROS tests (pytest loads this for the whole workspace)."""

import faulthandler
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# A test that blocks inside C (a DDS teardown, a camera SDK call) cannot be interrupted by
# pytest-timeout's signal, and one that holds the GIL starves any Python watchdog too. Two
# watchdogs name the test, dump every thread and end the run instead of letting CI sit out its
# 90 minutes: a Python one (clear message on the terminal) and, 60 s later, faulthandler's C
# thread (needs no GIL) writing to log/pytest-hang.txt, which `make test` prints on failure.
# pytest-timeout (pyproject.toml) stays the first line.
HUNG_TEST_S = float(os.environ.get("HABC_HUNG_TEST_S", "420"))
LOG_DIR = Path(__file__).resolve().parent / "log"


def _hung(item: pytest.Item) -> None:
    nodeid = item.nodeid
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:  # the real stderr, not the test's captured one
        capture.suspend_global_capture(in_=True)
    sys.stderr.write(
        f"\n\n!!! {nodeid} still running after {HUNG_TEST_S:.0f} s: "
        "every thread's stack follows; ending the test run\n"
    )
    faulthandler.dump_traceback(all_threads=True)
    sys.stderr.write(f"!!! hung test: {nodeid}\n")
    sys.stderr.flush()
    os._exit(3)


def pytest_configure(config):
    LOG_DIR.mkdir(exist_ok=True)
    config._habc_hang_file = (LOG_DIR / "pytest-hang.txt").open("w")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    (LOG_DIR / "pytest-current.txt").write_text(item.nodeid + "\n")
    hang_file = item.config._habc_hang_file
    hang_file.seek(0)
    hang_file.write(f"hung test: {item.nodeid}\n")
    hang_file.truncate()
    hang_file.flush()
    faulthandler.dump_traceback_later(HUNG_TEST_S + 60, exit=True, file=hang_file)
    watchdog = threading.Timer(HUNG_TEST_S, _hung, args=(item,))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture()
def ros():
    """A private rclpy context on a DDS domain of this test process, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    # Parallel test processes on one machine must not hear each other's nodes.
    rclpy.init(context=context, domain_id=100 + (os.getpid() + 37) % 100)
    yield context
    rclpy.shutdown(context=context)


class Spinning:
    """Nodes spinning in the background, each on an executor and a thread of its own, as the
    in-process runner spins them (arx_x5_driver.executors). ``stop`` (idempotent) shuts them
    down the way a node's process does (node_main): the spins end, then each node's shutdown
    hooks run (HOLD, END, the driver's safe state, closing devices), then the nodes are
    destroyed."""

    def __init__(self, context, nodes) -> None:
        from arx_x5_driver.executors import ExecutorPerNode

        self.nodes = list(nodes)
        self._spinning: ExecutorPerNode | None = ExecutorPerNode(context)
        for i, n in enumerate(self.nodes):
            self._spinning.add(f"{i}_{n.get_name()}", n)
        self._spinning.start()

    def stop(self) -> None:
        from arx_x5_driver.node_main import SHUTDOWN_PHASES, run_shutdown_phase

        if self._spinning is None:
            return
        self._spinning.shutdown(timeout_sec=2.0)
        for phase in range(len(SHUTDOWN_PHASES)):
            for n in self.nodes:
                run_shutdown_phase(n, phase)
        for n in self.nodes:
            n.destroy_node()
        # Freed now, before the test's context is shut down: an executor collected after that
        # leaves futures that print "exception was never retrieved" at exit.
        self._spinning = None
        self.nodes = []


@pytest.fixture()
def spin() -> Iterator[Callable[..., Spinning]]:
    """spin(context, nodes) -> Spinning; whatever a test leaves spinning is stopped after it."""
    started: list[Spinning] = []

    def start(context, nodes) -> Spinning:
        started.append(Spinning(context, nodes))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture()
def wait_until() -> Callable[..., bool]:
    """wait_until(pred, timeout=5.0) -> whether pred() became true in time (a hang guard)."""

    def wait(pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.02)
        return False

    return wait


@pytest.fixture(scope="session")
def kill_when_ready() -> Callable[[str, str], None]:
    """kill_when_ready(script, arg): run `python -c script arg` until it prints "ready", then
    SIGKILL it (no cleanup runs, as when power is cut): what it wrote so far is left as is."""
    import signal
    import subprocess

    def run(script: str, arg: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, arg], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout.readline().strip() == "ready"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    return run
