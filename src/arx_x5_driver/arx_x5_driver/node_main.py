"""The one `main()` every node of the rig shares: spin, then fail safe on any way out.

Lives in arx_x5_driver (the lowest package with nodes) so the arm driver and every habc_control
node use the same shutdown sequence; habc_control's in-process runner uses the same phases.

Lifecycle nodes (the arm driver, the cameras) are brought up by `bring_up`: configure, then
activate, unless their read-only `autostart` parameter is false, in which case they stay
unconfigured until a lifecycle manager drives them through the standard lifecycle services
(`<node>/change_state`). On the way out they are deactivated before the safe stop.
"""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from arx_x5_driver.ros_params import ParamSpec

# Shutdown hooks of the nodes, in two phases: first tell the graph (HOLD, END of a running
# episode) while the context is still valid, so the recorder still gets the END; then release
# hardware and files (driver damping, inference worker, bag). A node defines the ones it needs.
SHUTDOWN_PHASES = (("publish_hold", "end_running"), ("safe_stop", "shutdown", "close"))

# Declared by every lifecycle node of the rig; read by `bring_up`.
AUTOSTART = ParamSpec(
    True, "configure and activate at startup; false: wait for a lifecycle manager"
)


class LifecycleError(RuntimeError):
    """A lifecycle transition of a node failed (the node's own error, when it has one, is raised
    instead)."""


def lifecycle_state(node: LifecycleNode) -> str:
    """The node's state label: unconfigured, inactive, active or finalized (or a transition)."""
    # rclpy has no public getter for it (rclcpp's get_current_state); the state machine is the
    # one source, also for the lifecycle services.
    return str(node._state_machine.current_state[1])


class ReleasingLifecycle:
    """The transitions the rig's lifecycle nodes share (the arm driver, the camera node): mixed
    in before LifecycleNode. Cleanup, shutdown and error all release what configure took (the
    node's ``_teardown``); ``finish_lifecycle`` is the shutdown hook's way out of any state:
    deactivate when active (the driver holds, the cameras stop), then shut down."""

    def _teardown(self) -> None:
        raise NotImplementedError

    def on_cleanup(self, state: Any) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: Any) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: Any) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def finish_lifecycle(self) -> None:
        node: Any = self
        state = lifecycle_state(node)
        if state == "active":
            node.trigger_deactivate()
            state = lifecycle_state(node)
        if state in ("unconfigured", "inactive"):
            node.trigger_shutdown()


def bring_up(node: Node) -> Node:
    """Configure and activate a lifecycle node whose `autostart` is true; other nodes as they are.

    A failed transition shuts the node down (its hardware released) and raises: the node's own
    exception when it recorded one in `transition_error` (it names the parameter or device),
    else a LifecycleError naming the transition.
    """
    if not isinstance(node, LifecycleNode):
        return node
    if node.has_parameter("autostart") and not node.get_parameter("autostart").value:
        node.get_logger().info("autostart false: waiting for a lifecycle manager")
        return node
    for name, trigger in (
        ("configure", node.trigger_configure),
        ("activate", node.trigger_activate),
    ):
        ret = trigger()
        if ret == TransitionCallbackReturn.SUCCESS:
            continue
        state = lifecycle_state(node)
        cause = getattr(node, "transition_error", None)
        _finalize(node)
        if isinstance(cause, BaseException):
            raise cause
        raise LifecycleError(
            f"{node.get_name()}: lifecycle {name} returned {ret.to_label()} (state {state})"
        )
    return node


def deactivate(node: Node) -> None:
    """An active lifecycle node is deactivated (the driver holds, cameras stop publishing)."""
    if isinstance(node, LifecycleNode) and lifecycle_state(node) == "active":
        node.trigger_deactivate()


def _finalize(node: LifecycleNode) -> None:
    if lifecycle_state(node) in ("unconfigured", "inactive", "active"):
        node.trigger_shutdown()


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
    if phase == 1:
        deactivate(node)  # hold first, then the safe stop
    for hook in SHUTDOWN_PHASES[phase]:
        method = getattr(node, hook, None)
        if callable(method):
            method()


def freeze_startup_heap() -> None:
    """Collect once, then leave every object alive now out of later collections (gc.freeze).

    What a process made while starting (modules, the model, the sim, the nodes) is then never
    scanned again. A collection holds the GIL, so it pauses every thread, the control loop's and
    the executor's: full ones took 35-42 ms in the driver's process and 250-280 ms in a test
    process holding 400 000 objects, long enough there to delay the operator's pedal release by
    10 ticks (docs/performance.md, "The first tick, and the collections")."""
    gc.collect()
    gc.freeze()


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """Console-script body of a node: init, spin until Ctrl-C / SIGTERM, fail safe, shut down."""
    install_shutdown_signals()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = make_node()
        bring_up(node)
        freeze_startup_heap()
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
