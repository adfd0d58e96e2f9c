"""Several nodes in one process, each spun as if it had the process to itself.

Each node gets a SingleThreadedExecutor and a daemon thread of its own, as `ros2 launch` gives
each node a process. rclpy's MultiThreadedExecutor, serving them all, yields a callback again
while its earlier copy still waits in the thread pool and then spins holding the GIL its workers
need (ros2/rclpy#1452): under it the in-process graph ran at 4 Hz, and rows reached the mux
0.2-0.7 s late in the default layout (docs/performance.md, "One executor per node"). Used by the
in-process runner, the tests' `spin` fixture and the fault trials that run nodes on DDS.
"""

from __future__ import annotations

import threading

from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


class ExecutorPerNode:
    """`add` nodes, `start` their spins, `shutdown` them all (executors stopped, threads
    joined, nodes removed from their executors; the nodes themselves are the caller's)."""

    def __init__(self, context: Context | None = None) -> None:
        self._context = context
        self._executors: dict[str, tuple[SingleThreadedExecutor, Node]] = {}
        self._threads: dict[str, threading.Thread] = {}

    def add(self, name: str, node: Node) -> None:
        if name in self._executors:
            raise ValueError(f"name: {name!r} already has an executor")
        executor = SingleThreadedExecutor(context=self._context)
        executor.add_node(node)
        self._executors[name] = (executor, node)

    def start(self) -> None:
        """Spin every node added and not yet spinning."""
        for name, (executor, _node) in self._executors.items():
            if name not in self._threads:
                self._threads[name] = threading.Thread(
                    target=_spin, args=(executor,), name=f"spin_{name}", daemon=True
                )
                self._threads[name].start()

    def shutdown(self, timeout_sec: float = 2.0) -> None:
        for executor, _node in self._executors.values():
            executor.shutdown(timeout_sec=timeout_sec)
        for thread in self._threads.values():
            thread.join(timeout=timeout_sec)
        for executor, node in self._executors.values():
            executor.remove_node(node)
        self._executors.clear()
        self._threads.clear()


def _spin(executor: SingleThreadedExecutor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
