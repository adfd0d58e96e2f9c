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


def config_file(name: str) -> Path:
    """The installed share/habc_control/config/<name>, else the source tree's."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        p = Path(prefix) / "share" / "habc_control" / "config" / name
        if prefix and p.is_file():
            return p
    here = Path(__file__).resolve()
    for parent in here.parents:
        p = parent / "config" / name
        if p.is_file():
            return p
    raise FileNotFoundError(f"{name}: not installed and not found above {here}")


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


def _coerce(value: str) -> Any:
    """A command-line value as YAML reads it ("true" -> True, "30" -> 30, "[a, b]" -> list)."""
    return yaml.safe_load(value) if value != "" else ""


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply short overrides (`backend=sim`) and dotted ones (`teleop.input=pedal`).

    Values that are strings are parsed as YAML scalars/lists; an unknown node is an error.
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
        if isinstance(value, str) and key not in _VERBATIM:
            value = _coerce(value)
        if param == "enabled":  # switches the node itself on or off
            nodes[node]["enabled"] = bool(value)
            continue
        params = nodes[node].setdefault("parameters", {})
        current = params.get(param, (cfg.get("common") or {}).get(param))
        # ROS parameters are typed: `control_hz=30` must stay a double like the configured 30.0.
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        params[param] = value
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
