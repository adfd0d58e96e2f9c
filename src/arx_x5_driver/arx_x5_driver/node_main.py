"""The one `main()` every node of the rig shares: spin, then fail safe on any way out.

Lives in arx_x5_driver (the lowest package with nodes) so the arm driver and every habc_control
node use the same shutdown sequence; habc_control's in-process runner uses the same phases.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

# Shutdown hooks of the nodes, in two phases: first tell the graph (HOLD, END of a running
# episode) while the context is still valid, so the recorder still gets the END; then release
# hardware and files (driver damping, inference worker, bag). A node defines the ones it needs.
SHUTDOWN_PHASES = (("publish_hold", "end_running"), ("safe_stop", "shutdown", "close"))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_shutdown_signals() -> None:
    """SIGINT and SIGTERM both raise KeyboardInterrupt in the main thread.

    Used with rclpy.init(signal_handler_options=NO): the node's `finally` then runs while its
    context is still valid and can still publish its fail-safe (HOLD, END). SIGINT is set
    explicitly because a background job may inherit it ignored; SIGTERM would otherwise kill the
    process with no `finally` at all (launch sends it when SIGINT was not enough).
    """
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def run_shutdown_phase(node: Node, phase: int) -> None:
    """Call the node's hooks of one phase; phase 0 publishes, so only while ROS is up."""
    if phase == 0 and not rclpy.ok(context=node.context):
        return
    for hook in SHUTDOWN_PHASES[phase]:
        method = getattr(node, hook, None)
        if callable(method):
            method()


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """Console-script body of a node: init, spin until Ctrl-C / SIGTERM, fail safe, shut down."""
    install_shutdown_signals()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            for phase in range(len(SHUTDOWN_PHASES)):
                run_shutdown_phase(node, phase)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
