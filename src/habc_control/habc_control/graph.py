"""The rollout graph from config: one function used by the launch file and the in-process runner.

`config/rollout.yaml` lists the nodes (package, executable, parameters) plus `common` parameters
given to every node. `node_specs(load_graph_config(path), overrides)` returns the node list;
`launch/rollout.launch.py` turns it into launch_ros Nodes, `habc_control.runner` into in-process
nodes, so the two cannot drift. No rclpy, no launch import.
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
# Short launch/runner arguments -> (node, parameter).
OVERRIDES: dict[str, tuple[str, str, str]] = {
    "backend": ("arm_driver", "backend", "arm backend: sim, arx5 or kinematic"),
    "input": ("teleop", "input", "takeover input: pedal, keyboard or sim_operator"),
    "checkpoint": ("policy", "checkpoint", "policy checkpoint dir ('' = hold-still stand-in)"),
    "data_root": ("recorder", "data_root", "where episode bags are written"),
    "task": ("policy", "task", "task prompt for the policy"),
}


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
    """The installed share/habc_control/config/rollout.yaml, else the source tree's."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        p = Path(prefix) / "share" / "habc_control" / "config" / CONFIG_NAME
        if prefix and p.is_file():
            return p
    here = Path(__file__).resolve()
    for parent in here.parents:
        p = parent / "config" / CONFIG_NAME
        if p.is_file():
            return p
    raise FileNotFoundError(f"{CONFIG_NAME}: not installed and not found above {here}")


def load_graph_config(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path else default_config_path()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), Mapping):
        raise ValueError(f"{path}: expected a mapping with a `nodes` section")
    return dict(data)


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
        if isinstance(value, str) and key not in ("task", "checkpoint", "data_root"):
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
