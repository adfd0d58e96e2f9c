"""Fixtures shared by every package's ROS tests (pytest loads this for the whole workspace)."""

import os
import threading
import time
from collections.abc import Callable

import pytest


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
