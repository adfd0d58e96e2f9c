"""In-process runner: the rollout graph of config/rollout.yaml in one process.

For machines without the `ros2` CLI and `launch` (ROS from PyPI wheels): the same node list as
launch/rollout.launch.py (habc_control.graph). The arm driver and the recorder run each in a
process of its own as launch runs every node (node_process.py): the driver's loop is the graph's
clock, and the recorder, sharing a GIL with the policy's inference, received the arms' state in
bursts up to 0.9 s apart (docs/nodes.md). The others run here, each node with an
executor and a thread of its own (arx_x5_driver.executors), as each has its own process under
launch.

    habc-rollout                                  # config/rollout.yaml as is
    habc-rollout backend=kinematic input=keyboard teleop.sim_schedule="[left:2:4]"
    habc-rollout --episode "put the marker in the pouch" --duration 20 --outcome success

With --episode the runner also runs episodes and exits: each one is started, run for
--duration seconds and ended with --outcome. On the simulated rig, `--seed S` first resets the rig
to the layout of seed S (S+1, ... for --episodes N), as an operator resets the scene, and
`--outcome sim` ends each episode when the task itself is done (success, marker off the table, step
limit) with the task's verdict, like the DDS-free collector; --duration then only caps it.

    habc-rollout checkpoint=ckpt/sft/round_000 --episode "put the marker in the pouch" \
        --seed 10000 --episodes 4 --outcome sim --duration 15
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from arx_x5_driver.arm_node import BACKENDS
from arx_x5_driver.executors import ExecutorPerNode
from arx_x5_driver.node_main import (
    SHUTDOWN_PHASES,
    ShutdownSignals,
    bring_up,
    freeze_startup_heap,
)
from habc_control.collect import check_checkpoint
from habc_control.command_mux import ActionLayout
from habc_control.graph import (
    NodeSpec,
    apply_overrides,
    is_unset_list,
    load_graph_config,
    node_specs,
)
from habc_control.node_process import NodeProcess
from habc_control.teleop_node import HUMAN_SOURCES, INPUTS
from habc_core.cli import (
    ArgumentParser,
    UserError,
    non_negative_int,
    positive_int,
    split_overrides,
    user_errors,
)
from habc_core.contract import (
    END_EPISODE_SERVICE,
    OUTCOMES,
    SIM_RESET_SERVICE,
    SIM_TASK_STATUS_TOPIC,
    SOURCES,
    START_EPISODE_SERVICE,
    joint_states_topic,
)
from habc_interfaces.msg import SimTaskStatus
from habc_interfaces.srv import EndEpisode, ResetSim, StartEpisode

PROG = "habc-rollout"
SIM_OUTCOME = "sim"  # --outcome: the simulated task's own verdict


def ros_parameter(name: str, value: Any) -> Parameter:
    """A graph config value as an rclpy Parameter override.

    An empty list goes as an unset parameter: rclpy infers a byte array for it and re-infers
    the type of an override from its value whatever type the Parameter was given, so a node
    declaring a string array would refuse it (`teleop.sim_schedule=[]`). Unset is what
    `-p name:=[]` gives a node started alone, and the nodes read it as an empty list.
    """
    if is_unset_list(value):
        return Parameter(name, Parameter.Type.NOT_SET)
    try:
        return Parameter(name, value=value)
    except TypeError:  # a mapping or a mixed list: no ROS parameter type holds it
        raise UserError(f"{name}: {value!r} is not a ROS parameter value") from None


def make_node(spec: NodeSpec, context: Context | None = None) -> Node:
    """Instantiate the node class of `spec` (its module's NODE) with the spec's parameters."""
    module = importlib.import_module(spec.module)
    overrides = [ros_parameter(k, v) for k, v in spec.parameters.items()]
    return module.NODE(parameter_overrides=overrides, context=context)


def _declared(node: Node) -> list[str]:
    return sorted(node.list_parameters([], 0).names)


class Graph:
    """Start the configured nodes (one executor and thread each); `stop()` shuts them down
    fail-safe."""

    def __init__(
        self,
        config: Mapping[str, Any],
        context: Context | None = None,
        own_process: tuple[str, ...] = (),
    ) -> None:
        """`own_process`: nodes started in processes of their own (node_process), the rest
        in this one."""
        self.context = context
        self.nodes: dict[str, Node] = {}
        self.processes: dict[str, NodeProcess] = {}
        self._spinning = ExecutorPerNode(context)
        try:
            domain = (context or rclpy.get_default_context()).get_domain_id()
            for spec in node_specs(config):
                if spec.name in own_process:
                    self.processes[spec.name] = NodeProcess(spec, config, domain)
                    continue
                try:
                    node = make_node(spec, context)
                except (ValueError, ParameterException) as exc:
                    # A parameter the node refuses (a bad backend, a wrong type in a site
                    # file): one line naming the node, the graph's other nodes stopped.
                    raise UserError(f"{spec.name}: {exc}") from None
                except TypeError as exc:
                    empty = [k for k, v in spec.parameters.items() if is_unset_list(v)]
                    if not empty:
                        raise  # not a parameter of ours: a bug, keep its traceback
                    raise UserError(
                        f"{spec.name}: {exc} (an empty list reaches a node unset: "
                        f"{', '.join(empty)}; this node needs a value)"
                    ) from None
                self.nodes[spec.name] = node
                self._spinning.add(spec.name, node)
                # rclpy ignores an override the node never declares: a misspelt parameter
                # would silently run the default. `common` ones go to nodes that may not use
                # them; a node's own (its section and the overrides) must all be declared.
                own = (config["nodes"][spec.name].get("parameters") or {}).keys()
                unknown = sorted(p for p in own if not node.has_parameter(p))
                if unknown:
                    raise UserError(
                        f"{spec.name}: no parameter {', '.join(unknown)}; "
                        f"its parameters: {', '.join(_declared(node))}"
                    )
                try:  # lifecycle nodes (driver, cameras): configure + activate, as node_main
                    bring_up(node)
                except ValueError as exc:
                    raise UserError(f"{spec.name}: {exc}") from None
            if "arm_driver" in self.processes:
                self._wait_for_driver(config)
            if "recorder" in self.processes and "episode_manager" in self.nodes:
                self._wait_for_recorder()
        except Exception:
            self.stop()
            raise

    def _wait_for_driver(self, config: Mapping[str, Any], timeout: float = 60.0) -> None:
        """Until the driver's process publishes the first arm's joint_states (the clock)."""
        proc = self.processes["arm_driver"]
        probe = next(iter(self.nodes.values()), None)
        if probe is None:
            return
        arms = (config.get("common") or {}).get("arms") or ["left"]
        deadline = time.monotonic() + timeout
        while probe.count_publishers(joint_states_topic(arms[0])) == 0:
            proc.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"arm_driver: no joint_states after {timeout} s")
            time.sleep(0.1)

    def _wait_for_recorder(self, timeout: float = 60.0) -> None:
        """Until the recorder's process hears the episode manager's events (its START would
        otherwise be refused)."""
        proc, manager = self.processes["recorder"], self.nodes["episode_manager"]
        deadline = time.monotonic() + timeout
        while not manager.recorder_listens():
            proc.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"recorder: not subscribed to the events after {timeout} s")
            time.sleep(0.1)

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
        # The nodes are built: what this process holds now is never scanned by the collector
        # again (a full collection pauses every node of this process).
        freeze_startup_heap()
        self._spinning.start()

    def stop(self) -> None:
        self._run_hooks(SHUTDOWN_PHASES[0])  # HOLD / END while the graph still spins
        time.sleep(0.3)  # ... so they reach their subscribers (recorder, driver)
        for name, proc in self.processes.items():  # their own fail-safe shutdown (SIGINT)
            print(f"{PROG}: {name} stopped: {proc.stop()}", file=sys.stderr)
        self.processes.clear()
        self._spinning.shutdown(timeout_sec=2.0)
        self._run_hooks(SHUTDOWN_PHASES[1])  # no callback runs any more: release hardware
        for node in self.nodes.values():
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


class SimTaskWatch:
    """The newest /sim/task_status, read from the runner's thread."""

    def __init__(self, node: Node) -> None:
        self._lock = threading.Lock()
        self._last: SimTaskStatus | None = None
        node.create_subscription(SimTaskStatus, SIM_TASK_STATUS_TOPIC, self._on_status, 10)

    def _on_status(self, msg: SimTaskStatus) -> None:
        with self._lock:
            self._last = msg

    def last(self) -> SimTaskStatus | None:
        with self._lock:
            return self._last


def run_episode(
    graph: Graph,
    task: str,
    duration: float,
    outcome: str,
    source: str = "rollout",
    round_index: int = 0,
    timeout: float = 10.0,
    seed: int | None = None,
    watch: SimTaskWatch | None = None,
) -> tuple[str, str]:
    """Reset the sim rig (when `seed` is given), start one episode (retrying until the recorder
    is discovered), run it, end it. Returns (episode id, outcome)."""
    node = graph.nodes["episode_manager"]
    if seed is not None:
        reset_cli = node.create_client(ResetSim, SIM_RESET_SERVICE)
        res = call(node, reset_cli, ResetSim.Request(seed=int(seed)), timeout=timeout)
        if not res.accepted:
            raise RuntimeError(f"sim reset to seed {seed} failed: {res.message}")
    start_cli = node.create_client(StartEpisode, START_EPISODE_SERVICE)
    end_cli = node.create_client(EndEpisode, END_EPISODE_SERVICE)
    req = StartEpisode.Request(task=task, source=source, round=round_index)
    deadline = time.monotonic() + timeout
    while True:
        res = call(node, start_cli, req)
        if res.accepted:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"StartEpisode refused: {res.message}")
        time.sleep(0.2)
    end_at = time.monotonic() + duration
    label = outcome
    if outcome == SIM_OUTCOME:
        label = "unknown"  # the cap came first: the task was never judged
        while time.monotonic() < end_at:
            status = watch.last() if watch is not None else None
            if status is not None and status.done and (seed is None or status.seed == seed):
                label = "success" if status.success else "failure"
                break
            time.sleep(0.005)
    else:
        time.sleep(max(0.0, end_at - time.monotonic()))
    end = call(node, end_cli, EndEpisode.Request(episode_id="", outcome=label))
    if not end.accepted:
        raise RuntimeError(f"EndEpisode refused: {end.message}")
    return res.episode_id, label


# Flags that only shape the episodes --episode runs: without it the graph spins until Ctrl-C.
EPISODE_FLAGS: tuple[str, ...] = ("episodes", "duration", "outcome", "source", "round", "seed")
EPISODE_DEFAULTS: dict[str, Any] = {
    "episodes": 1,
    "duration": 10.0,
    "outcome": "unknown",
    "source": "rollout",
    "round": 0,
    "seed": None,
}


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Flags and overrides checked up front: a user error exits 2 with one line, before any
    node starts. Refused combinations: an episode flag (--episodes, --duration, --outcome,
    --source, --round, --seed) without --episode; --outcome sim without --seed; an empty
    --episode prompt."""
    ap = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="key=value: backend=, input=, node.param=")
    ap.add_argument(
        "--config", default=None, help="graph profile (sim, robot) or YAML path (default: sim)"
    )
    ap.add_argument(
        "--driver-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the arm driver in a process of its own, as launch does (default; "
        "--no-driver-process: in this one)",
    )
    ap.add_argument(
        "--recorder-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the recorder in a process of its own, as launch does (default; "
        "--no-recorder-process: in this one, where the policy's inference delays what it "
        "receives)",
    )
    ap.add_argument("--episode", default=None, help="run episodes with this task prompt")
    ap.add_argument("--episodes", type=positive_int, default=None, help="how many (default 1)")
    ap.add_argument(
        "--duration", type=_duration, default=None, help="episode length (cap) [s] (default 10)"
    )
    ap.add_argument(
        "--outcome",
        default=None,
        help=f"one of {list(OUTCOMES)}, or {SIM_OUTCOME!r} (the sim task's own verdict); "
        "default unknown",
    )
    ap.add_argument("--source", default=None, help=f"episode source: one of {list(SOURCES)}")
    ap.add_argument(
        "--round", type=non_negative_int, default=None, help="round the episodes belong to"
    )
    ap.add_argument(
        "--seed", type=non_negative_int, default=None, help="sim: reset to this layout seed first"
    )
    opts = ap.parse_args(argv)
    if opts.episode is None:
        given = [f"--{k}" for k in EPISODE_FLAGS if getattr(opts, k) is not None]
        if given:
            ap.error(
                f"{', '.join(given)}: only with --episode (without it the graph runs until "
                "Ctrl-C and starts no episode)"
            )
    elif not opts.episode.strip():
        ap.error("--episode: empty task prompt")
    for key, default in EPISODE_DEFAULTS.items():
        if getattr(opts, key) is None:
            setattr(opts, key, default)
    if opts.outcome not in (*OUTCOMES, SIM_OUTCOME):
        ap.error(f"--outcome: {opts.outcome!r} is not one of {[*OUTCOMES, SIM_OUTCOME]}")
    if opts.outcome == SIM_OUTCOME and opts.seed is None:
        # Without a reset the task keeps the verdict of the episode before: every later
        # episode would end at once.
        ap.error(f"--outcome {SIM_OUTCOME}: needs --seed (each episode starts from a reset)")
    if opts.source not in SOURCES:
        ap.error(f"--source: {opts.source!r} is not one of {list(SOURCES)}")
    return opts


def check_graph(config: Mapping[str, Any], opts: argparse.Namespace) -> None:
    """What the config and the flags need of each other, checked before any node starts."""
    specs = {spec.name: spec.parameters for spec in node_specs(config)}
    # The nodes refuse these too, but only once the graph has started (the sim backend loaded).
    choices = {
        ("arm_driver", "backend"): BACKENDS,
        ("teleop", "input"): INPUTS,
        ("teleop", "human_source"): HUMAN_SOURCES,
    }
    for (node, param), valid in choices.items():
        value = (specs.get(node) or {}).get(param)
        if node in specs and value is not None and value not in valid:
            raise UserError(f"{node}.{param}: {value!r} is not one of {', '.join(valid)}")
    for name in ("episode_manager", "recorder"):
        if opts.episode and name not in specs:
            raise UserError(f"--episode: needs the {name} node, which this graph disables")
    driver = specs.get("arm_driver")
    if opts.seed is not None and (driver is None or driver.get("backend") != "sim"):
        backend = None if driver is None else driver.get("backend")
        # Only the sim backend serves /sim/reset: the reset would time out after the start.
        raise UserError(f"--seed: needs arm_driver.backend sim (a seeded layout), got {backend!r}")
    policy = specs.get("policy")
    spec = str((policy or {}).get("checkpoint") or "")
    if policy is not None and spec:
        layout = ActionLayout(
            tuple(policy.get("arms") or ("left", "right")), policy.get("action_space", "ee")
        )
        check_checkpoint(
            spec,
            execute_steps=int(policy.get("execute_steps", 25)),
            source="policy.execute_steps of the graph config",
            name="policy.checkpoint",
            action_dim=layout.dim,
            cameras=tuple(policy.get("cameras") or ()),
            # Only the sim backend publishes /sim/env_state, a state-mode model's input.
            env_state=None if driver is None else driver.get("backend") == "sim",
        )


def main(args: Sequence[str] | None = None) -> None:
    argv = rclpy.utilities.remove_ros_args(sys.argv if args is None else list(args))[1:]
    with user_errors(PROG):
        opts = parse_args(argv)
        overrides = split_overrides(opts.overrides)
        config = apply_overrides(load_graph_config(opts.config), overrides)
        check_graph(config, opts)
    # Ctrl-C / SIGTERM: stop() still publishes HOLD and END. The first signal raises in this
    # thread (it sleeps through the episodes; the executor spins elsewhere); later ones never
    # cut stop() short.
    signals = ShutdownSignals().install()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    graph = None
    try:
        with user_errors(PROG):  # a parameter a node refuses: Graph stopped the others
            own = tuple(
                name
                for name, apart in (
                    ("arm_driver", opts.driver_process),
                    ("recorder", opts.recorder_process),
                )
                if apart
            )
            graph = Graph(config, own_process=own)
        graph.spin_in_background()
        if opts.episode:
            watch = SimTaskWatch(graph.nodes["episode_manager"])
            for i in range(opts.episodes):
                seed = None if opts.seed is None else opts.seed + i
                eid, label = run_episode(
                    graph,
                    opts.episode,
                    opts.duration,
                    opts.outcome,
                    source=opts.source,
                    round_index=opts.round,
                    seed=seed,
                    watch=watch,
                )
                time.sleep(0.5)  # the END reaches the recorder, the bag closes
                where = "" if seed is None else f", seed {seed}"
                print(f"episode {eid} recorded ({label}{where})")
        else:
            while rclpy.ok():
                time.sleep(0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signals.defer()
        if graph is not None:
            graph.stop()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
