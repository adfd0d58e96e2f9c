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
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
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


class ShutdownSignals:
    """SIGINT and SIGTERM, the two ways a node is told to stop (Ctrl-C; launch, systemd).

    Used with rclpy.init(signal_handler_options=NO), so the node's `finally` runs while its
    context is still valid and can still publish its fail-safe (HOLD, END). SIGINT is set
    explicitly because a background job may inherit it ignored; SIGTERM would otherwise kill the
    process with no `finally` at all (launch sends it when SIGINT was not enough).

    While a node starts (a model loads, the sim builds) the first signal raises
    KeyboardInterrupt in the main thread. Once it spins, `defer()` makes a signal only a request
    the spin loop reads between callbacks: an exception raised wherever the main thread happens to
    be can land inside rclpy's message conversion (a message's Python constructor runs inside
    take_message), where pybind11 turns it into "RuntimeError: Unable to convert call argument";
    the driver then exited 1 after its safe stop (1 in 20 SIGINTs under a message flood; the
    fault suite's stop_signal_in_message_flood). After the first signal no later one raises: a
    second Ctrl-C, or launch's SIGTERM, never cuts the safe stop short.
    """

    def __init__(self) -> None:
        self._requested = threading.Event()
        self._raise = True

    def install(self) -> ShutdownSignals:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._requested.set()
        if self._raise:
            self._raise = False
            raise KeyboardInterrupt(f"signal {signum}")

    def defer(self) -> None:
        """From now on a signal only sets `requested`."""
        self._raise = False

    @property
    def requested(self) -> bool:
        return self._requested.is_set()


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


# How long the spin loop waits for work before it looks at a signal again: a node with no
# traffic (no timer, nothing discovered yet) would otherwise wait forever, the signal unseen.
SIGNAL_POLL_S = 0.1


def spin_until_signalled(node: Node, signals: ShutdownSignals) -> None:
    """Spin `node` until a signal asks it to stop or its context shuts down; every callback runs
    to its end (a signal is read between them)."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    signals.defer()
    try:
        while not signals.requested and rclpy.ok(context=node.context):
            executor.spin_once(timeout_sec=SIGNAL_POLL_S)
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=0.0)


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """Console-script body of a node: init, spin until Ctrl-C / SIGTERM, fail safe, shut down."""
    signals = ShutdownSignals().install()
    node = None
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = make_node()
        bring_up(node)
        freeze_startup_heap()
        spin_until_signalled(node, signals)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signals.defer()
        if node is not None:
            for phase in range(len(SHUTDOWN_PHASES)):
                run_shutdown_phase(node, phase)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
