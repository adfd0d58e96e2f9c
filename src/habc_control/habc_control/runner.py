"""In-process runner: the rollout graph of config/rollout.yaml in one process.

For machines without the `ros2` CLI and `launch` (ROS from PyPI wheels): the same node list as
launch/rollout.launch.py (habc_control.graph), every node in one MultiThreadedExecutor.

    habc-rollout                                  # config/rollout.yaml as is
    habc-rollout backend=kinematic input=keyboard teleop.sim_schedule="[left:2:4]"
    habc-rollout --episode "put the marker in the pouch" --duration 20 --outcome success

With --episode the runner also starts one episode, runs it for --duration seconds and ends it,
then exits (a smoke run that leaves one bag under data_root).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from arx_x5_driver.node_main import SHUTDOWN_PHASES, install_shutdown_signals
from habc_control.graph import NodeSpec, apply_overrides, load_graph_config, node_specs
from habc_interfaces.srv import EndEpisode, StartEpisode


def make_node(spec: NodeSpec, context: Context | None = None) -> Node:
    """Instantiate the node class of `spec` (its module's NODE) with the spec's parameters."""
    module = importlib.import_module(spec.module)
    overrides = [Parameter(k, value=v) for k, v in spec.parameters.items()]
    return module.NODE(parameter_overrides=overrides, context=context)


class Graph:
    """Start the configured nodes in one process; `stop()` shuts them down fail-safe."""

    def __init__(
        self,
        config: Mapping[str, Any],
        context: Context | None = None,
        num_threads: int = 4,
    ) -> None:
        self.context = context
        self._thread: threading.Thread | None = None
        self.nodes: dict[str, Node] = {}
        self.executor = MultiThreadedExecutor(num_threads=num_threads, context=context)
        try:
            for spec in node_specs(config):
                node = make_node(spec, context)
                self.nodes[spec.name] = node
                self.executor.add_node(node)
        except Exception:
            self.stop()
            raise

    def _run_hooks(self, names: tuple[str, ...]) -> None:
        for node in self.nodes.values():
            for name in names:
                fn = getattr(node, name, None)
                if not callable(fn):
                    continue
                try:
                    fn()
                except Exception as exc:  # noqa: BLE001 - keep stopping the others
                    node.get_logger().error(f"{name} failed on shutdown: {exc!r}")

    def spin_in_background(self) -> None:
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def stop(self) -> None:
        self._run_hooks(SHUTDOWN_PHASES[0])  # HOLD / END while the graph still spins
        time.sleep(0.3)  # ... so they reach their subscribers (recorder, driver)
        self.executor.shutdown(timeout_sec=2.0)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._run_hooks(SHUTDOWN_PHASES[1])  # no callback runs any more: release hardware
        for node in self.nodes.values():
            self.executor.remove_node(node)
            node.destroy_node()
        self.nodes.clear()


def call(node: Node, client, request, timeout: float = 5.0):
    """Call a service from a thread other than the executor's (the graph spins elsewhere)."""
    if not client.wait_for_service(timeout_sec=timeout):
        raise TimeoutError(f"service {client.srv_name} not available after {timeout} s")
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"service {client.srv_name}: no answer in {timeout} s")
        time.sleep(0.01)
    return future.result()


def run_episode(
    graph: Graph,
    task: str,
    duration: float,
    outcome: str,
    source: str = "rollout",
    round_index: int = 0,
    timeout: float = 10.0,
) -> str:
    """Start one episode (retrying until the recorder is discovered), run it, end it."""
    node = graph.nodes["episode_manager"]
    start_cli = node.create_client(StartEpisode, "/episode/start")
    end_cli = node.create_client(EndEpisode, "/episode/end")
    req = StartEpisode.Request(task=task, source=source, round=round_index)
    deadline = time.monotonic() + timeout
    while True:
        res = call(node, start_cli, req)
        if res.accepted:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"StartEpisode refused: {res.message}")
        time.sleep(0.2)
    time.sleep(duration)
    end = call(node, end_cli, EndEpisode.Request(episode_id="", outcome=outcome))
    if not end.accepted:
        raise RuntimeError(f"EndEpisode refused: {end.message}")
    return res.episode_id


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="key=value: backend=, input=, node.param=")
    ap.add_argument("--config", default=None, help="graph YAML (default: installed rollout.yaml)")
    ap.add_argument("--episode", default=None, help="run one episode with this task prompt")
    ap.add_argument("--duration", type=float, default=10.0, help="episode length [s]")
    ap.add_argument("--outcome", default="unknown", help="outcome label of that episode")
    return ap.parse_args(argv)


def main(args=None) -> None:
    argv = rclpy.utilities.remove_ros_args(sys.argv if args is None else args)[1:]
    opts = parse_args(argv)
    overrides = {}
    for item in opts.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"override {item!r}: expected key=value")
        overrides[key] = value
    config = apply_overrides(load_graph_config(opts.config), overrides)
    install_shutdown_signals()  # Ctrl-C / SIGTERM: stop() still publishes HOLD and END
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    graph = None
    try:
        graph = Graph(config)
        graph.spin_in_background()
        if opts.episode:
            eid = run_episode(graph, opts.episode, opts.duration, opts.outcome)
            time.sleep(0.5)  # the END reaches the recorder, the bag closes
            print(f"episode {eid} recorded")
        else:
            while rclpy.ok():
                time.sleep(0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if graph is not None:
            graph.stop()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
