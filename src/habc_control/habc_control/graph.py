"""The rollout graph from config: one function used by the launch file and the in-process runner.

`config/rollout.yaml` lists the nodes (package, executable, parameters) plus `common` parameters
given to every node. `node_specs(load_graph_config(path), overrides)` returns the node list;
`launch/rollout.launch.py` turns it into launch_ros Nodes, `habc_control.runner` into in-process
nodes, so the two cannot drift. No rclpy, no launch import.

Profiles: `sim` (rollout.yaml, the default) and `robot` (rollout_robot.yaml). A graph YAML may
start from another with `base: <profile or path relative to it>` and hold only what differs:
mappings are merged key by key, lists and scalars replace the base's. rollout_robot.yaml is such
an overlay, so a parameter added to rollout.yaml reaches the robot profile too; a site file with
`base: robot` adds the rig's serials and CAN buses the same way.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from habc_core.paths import config_file

CONFIG_NAME = "rollout.yaml"
# Graph profiles by name -> file in the config directory; `sim` is the default.
PROFILES: dict[str, str] = {"sim": CONFIG_NAME, "robot": "rollout_robot.yaml"}
# Short launch/runner arguments -> (node, parameter).
OVERRIDES: dict[str, tuple[str, str, str]] = {
    "backend": ("arm_driver", "backend", "arm backend: sim, arx5 or kinematic"),
    "input": ("teleop", "input", "takeover input: pedal, keyboard or sim_operator"),
    "pedal_device": ("teleop", "pedal_device", "pedal: /dev/input/by-id/... or /dev/input/eventN"),
    "checkpoint": ("policy", "checkpoint", "policy checkpoint dir ('' = hold-still stand-in)"),
    "data_root": ("recorder", "data_root", "where episode bags are written"),
    "task": ("policy", "task", "task prompt for the policy"),
}
# Short overrides taken verbatim, not parsed as YAML (paths and prompts are strings).
_VERBATIM = ("task", "checkpoint", "data_root", "pedal_device")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    package: str
    executable: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return f"{self.package}.{self.executable}"


def default_config_path() -> Path:
    """The sim profile, rollout.yaml: the graph without a `config`."""
    return config_file(CONFIG_NAME)


def resolve_config(config: str | Path | None, relative_to: Path | None = None) -> Path:
    """A profile name (`sim`, `robot`) or a YAML path -> the file; None or "" -> `sim`.

    A relative path is taken from `relative_to` (the directory of the file naming it as `base`).
    """
    text = str(config) if config else "sim"
    if text in PROFILES:
        return config_file(PROFILES[text])
    path = Path(text).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if path.suffix not in (".yaml", ".yml") and os.sep not in text:
        raise ValueError(
            f"config {text!r}: unknown profile; valid: {', '.join(PROFILES)} or a graph YAML path"
        )
    if not path.is_file():
        raise ValueError(f"config {text!r}: no such file {path}")
    return path


def is_unset_list(value: Any) -> bool:
    """An empty list: it has no ROS parameter type (rclpy infers a byte array, which a node
    declaring a string array refuses), so a node receives it as an unset parameter (None), as
    `ros2 run ... -p name:=[]` delivers it; the nodes read None as "none" for their lists."""
    return isinstance(value, list) and not value


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """`overlay` over `base`: mappings merged key by key, anything else replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ValueError(f"base: {path} includes itself ({chain})")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping")
    data = dict(data)
    base = data.pop("base", None)
    if base is None:
        return data
    parent = _load(resolve_config(base, path.parent), (*seen, path.resolve()))
    return merge(parent, data)


def load_graph_config(config: str | Path | None = None) -> dict[str, Any]:
    """The graph of a profile name (`sim`, `robot`) or a YAML path, `base` files merged in."""
    path = resolve_config(config)
    data = _load(path, ())
    if not isinstance(data.get("nodes"), Mapping):
        raise ValueError(f"{path}: expected a mapping with a `nodes` section")
    return data


def _coerce(key: str, value: str) -> Any:
    """A command-line value as YAML reads it ("true" -> True, "30" -> 30, "[a, b]" -> list)."""
    if value == "":
        return ""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        raise ValueError(f"override {key!r}: value {value!r} is not valid YAML") from None


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string"}
_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _item_type(current: Any) -> type | None:
    return type(current[0]) if isinstance(current, list) and current else None


def _check_value(key: str, value: Any, current: Any) -> Any:
    """`value` in the ROS type of the configured `current` value (None: not configured, any ROS
    type), else a ValueError naming the override: the node refusing it later would print a
    traceback after the graph had started."""
    where = f"override {key!r}"
    if isinstance(value, list):
        if current is not None and not isinstance(current, list):
            raise ValueError(f"{where}: expected {_describe(current)}, got the list {value!r}")
        if any(v is None or isinstance(v, (list, dict)) for v in value):
            raise ValueError(f"{where}: a ROS list holds plain values, got {value!r}")
        want, kinds = _item_type(current), {type(v) for v in value}
        if kinds == {int, float} or (want is float and kinds == {int}):
            value, kinds = [float(v) for v in value], {float}  # a double array, as configured
        if len(kinds) > 1:
            raise ValueError(f"{where}: list items of mixed types, got {value!r}")
        if want is not None and kinds and kinds != {want}:
            hint = "; quote them" if want is str else ""
            raise ValueError(f"{where}: expected {_describe(current)}, got {value!r}{hint}")
        return list(value)
    if value is None or isinstance(value, dict):
        raise ValueError(f"{where}: expected a value or a list, got {value!r}")
    if current is None:
        return value
    if isinstance(current, list):
        raise ValueError(f"{where}: expected {_describe(current)}, got {value!r}")
    # ROS parameters are typed: `control_hz=30` must stay a double like the configured 30.0.
    if isinstance(current, float) and type(value) is int:
        return float(value)
    if type(value) is not type(current):
        raise ValueError(f"{where}: expected {_describe(current)}, got {value!r}")
    return value


def _describe(current: Any) -> str:
    if isinstance(current, list):
        item = _item_type(current)
        kind = f"a list of {_PLURALS.get(item, 'values')}" if item else "a list"
        return f"{kind} like {list(current)!r}"
    if isinstance(current, bool):
        return "true or false"
    return f"{_TYPE_NAMES.get(type(current), type(current).__name__)} like {current!r}"


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply short overrides (`backend=sim`) and dotted ones (`teleop.input=pedal`).

    A string value is read by the type of the configured one: verbatim for a string parameter
    (a path, a prompt, `mode=hold`), as YAML otherwise (`30`, `true`, `[left:2:4]`, `[]`), and
    must then have the configured ROS type (an integer stays an integer; an integer for a double
    becomes a double). An unknown node, a parameter of another type or malformed YAML is a
    ValueError naming the override.
    """
    cfg = copy.deepcopy(dict(config))
    nodes = cfg["nodes"]
    for key, value in overrides.items():
        if key in OVERRIDES:
            node, param, _ = OVERRIDES[key]
        elif "." in key:
            node, param = key.split(".", 1)
        else:
            raise ValueError(
                f"override {key!r}: use one of {sorted(OVERRIDES)} or <node>.<parameter>"
            )
        if node not in nodes:
            raise ValueError(f"override {key!r}: no node {node!r}; nodes: {sorted(nodes)}")
        if not param:
            raise ValueError(f"override {key!r}: no parameter after {node!r}.")
        if param == "enabled":  # switches the node itself on or off
            if isinstance(value, str):
                value = _coerce(key, value)
            if not isinstance(value, bool):
                raise ValueError(f"override {key!r}: expected true or false, got {value!r}")
            nodes[node]["enabled"] = value
            continue
        params = nodes[node].setdefault("parameters", {})
        current = params.get(param, (cfg.get("common") or {}).get(param))
        if isinstance(value, str):
            verbatim = key in _VERBATIM or isinstance(current, str)
            value = value if verbatim else _coerce(key, value)
        params[param] = _check_value(key, value, current)
    return cfg


def node_specs(config: Mapping[str, Any]) -> list[NodeSpec]:
    """Every enabled node with `common` parameters merged under its own."""
    common = dict(config.get("common") or {})
    out = []
    for name, entry in config["nodes"].items():
        if not entry.get("enabled", True):
            continue
        for key in ("package", "executable"):
            if not entry.get(key):
                raise ValueError(f"nodes.{name}.{key}: missing")
        params = {**common, **(entry.get("parameters") or {})}
        out.append(NodeSpec(name, entry["package"], entry["executable"], params))
    return out
