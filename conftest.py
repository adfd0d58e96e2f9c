"""Fixtures shared by every package's ROS tests (pytest loads this for the whole workspace)."""

import faulthandler
import os
import sys
import threading
import time
from collections.abc import Callable

import pytest

# A test that blocks inside C (a DDS teardown, say) cannot be interrupted by pytest-timeout's
# signal; this watchdog names the test, dumps every thread and ends the run instead of letting
# CI sit out its 90 minutes. pytest's own timeout (pyproject.toml) stays the first line.
HUNG_TEST_S = float(os.environ.get("HABC_HUNG_TEST_S", "420"))


def _hung(item: pytest.Item) -> None:
    nodeid = item.nodeid
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:  # the real stderr, not the test's captured one
        capture.suspend_global_capture(in_=True)
    sys.stderr.write(f"\n\n!!! {nodeid} still running after {HUNG_TEST_S:.0f} s: "
                     "every thread's stack follows; ending the test run\n")
    faulthandler.dump_traceback(all_threads=True)
    sys.stderr.write(f"!!! hung test: {nodeid}\n")
    sys.stderr.flush()
    os._exit(3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    watchdog = threading.Timer(HUNG_TEST_S, _hung, args=(item,))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


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


@pytest.fixture()
def spin() -> Callable:
    """spin(context, nodes) -> (executor, thread): nodes spinning on a background thread."""
    from rclpy.executors import MultiThreadedExecutor

    def start(context, nodes):
        ex = MultiThreadedExecutor(num_threads=2, context=context)
        for n in nodes:
            ex.add_node(n)
        thread = threading.Thread(target=ex.spin, daemon=True)
        thread.start()
        return ex, thread

    return start


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
