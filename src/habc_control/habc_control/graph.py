"""The rollout graph from config: one function used by the launch file and the in-process runner.

A profile (`config/rollout.yaml`, the sim one) is a standard ROS 2 params file, so a node started
alone reads it as it is (`ros2 run arx_x5_driver arm_node --ros-args --params-file
config/rollout.yaml`): each node's parameters under `<node name>: ros__parameters:`, the ones
every node gets under the `/**:` wildcard, and the graph itself (which nodes, their package and
executable, `enabled`, the `base` profile) under `rollout_graph: ros__parameters:`. rcl takes
that section as the parameters of a node named `rollout_graph`, which no node is, so nodes
ignore it (rcl rejects anything at the top level that is not a `<name>: ros__parameters:`
section, which is why the graph is not a plain top-level key).

`node_specs(load_graph_config(path), overrides)` returns the node list; `launch/rollout.launch.py`
turns it into launch_ros Nodes (handing each the file `write_params_file` writes),
`habc_control.runner` into in-process nodes, so the two cannot drift. No rclpy, no launch import.

Profiles: `sim` (rollout.yaml, the default) and `robot` (rollout_robot.yaml). A profile may start
from another with `rollout_graph.ros__parameters.base: <profile or path relative to it>` and hold
only what differs: mappings are merged key by key, lists and scalars replace the base's.
rollout_robot.yaml is such an overlay, so a parameter added to rollout.yaml reaches the robot
profile too; a site file with `base: robot` adds the rig's serials and CAN buses the same way.
Because every file is a params file, rcl can stack them too (`--params-file rollout.yaml
--params-file rollout_robot.yaml`: later files win).

In memory a loaded profile is `{"common": {...}, "nodes": {name: {"package", "executable",
"enabled", "parameters"}}}`, what the runner, the collector and the tests read.
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


# The params-file section holding the graph, and rcl's every-node wildcard.
GRAPH_SECTION = "rollout_graph"
WILDCARD = "/**"
PARAMS_KEY = "ros__parameters"
# What a graph entry of a node may hold (everything else of a node is a ROS parameter).
_ENTRY_KEYS = ("package", "executable", "enabled")
# Plain (unquoted) scalars rcl reads as a bool where PyYAML reads a string (rcl parse.c get_value).
_RCL_BOOLS = frozenset(
    "y Y yes Yes YES true True TRUE on On ON n N no No NO false False FALSE off Off OFF".split()
)


def _rcl_types_plain(text: str) -> bool:
    """True where rcl reads this plain scalar as a bool, an integer or a double."""
    if text in _RCL_BOOLS:
        return True
    for parse in (lambda t: int(t, 0), float):  # strtol(base 0) and strtod, roughly
        try:
            parse(text)
            return True
        except ValueError:
            pass
    return False


class _ParamsLoader(yaml.SafeLoader):
    """safe_load, refusing what rcl's params-file parser reads differently or rejects, so a
    profile means the same to `habc-rollout` and to a node given it with --params-file."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ValueError(f"line {mark.line + 1}: YAML aliases are refused by rcl")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        # Keys are names to rcl, never typed: only values are checked.
        self._keys = getattr(self, "_keys", set()) | {id(k) for k, _v in node.value}
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_str(self, node):  # type: ignore[no-untyped-def]
        value = super().construct_yaml_str(node)
        is_key = id(node) in getattr(self, "_keys", ())
        if node.style is None and not is_key and _rcl_types_plain(value):
            raise ValueError(
                f"line {node.start_mark.line + 1}: {value!r} is a string here but rcl reads it "
                f"as a bool or a number; quote it"
            )
        return value

    def construct_yaml_int(self, node):  # type: ignore[no-untyped-def]
        if "_" in node.value or ":" in node.value:
            raise ValueError(
                f"line {node.start_mark.line + 1}: {node.value!r} is a number here but a string "
                f"to rcl; write it plainly or quote it"
            )
        return super().construct_yaml_int(node)


_ParamsLoader.add_constructor("tag:yaml.org,2002:str", _ParamsLoader.construct_yaml_str)
_ParamsLoader.add_constructor("tag:yaml.org,2002:int", _ParamsLoader.construct_yaml_int)


def _flatten(params: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """A ros__parameters mapping as rcl reads it: nested mappings become dotted names."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, where, f"{name}."))
            continue
        _check_rcl_value(f"{where}.{name}", value)
        out[name] = value
    return out


def _check_rcl_value(name: str, value: Any) -> None:
    """A value rcl can hold: a scalar, or a non-empty list of one scalar type."""
    if value is None:
        raise ValueError(f'{name}: no value (rcl refuses an empty value; quote "" for none)')
    if isinstance(value, list):
        if not value:
            # rcl parses `[]` into a parameter without a value; the node then fails to start.
            raise ValueError(f"{name}: an empty list has no ROS type; leave the parameter out")
        kinds = {type(v) for v in value}
        if len(kinds) > 1 or not kinds <= {bool, int, float, str}:
            raise ValueError(
                f"{name}: {value!r}: a ROS list holds values of one type "
                f"(write 0.0, not 0, in a list of numbers)"
            )
    elif not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"{name}: {value!r} is not a ROS parameter value")


def _section(path: Path, key: Any, body: Any) -> dict[str, Any]:
    """The ros__parameters mapping of one top-level section, or a ValueError naming it."""
    if not isinstance(key, str) or ("/" in key and key != WILDCARD):
        raise ValueError(
            f"{path}: section {key!r}: use a node name or {WILDCARD!r} "
            f"(namespaced sections are not supported)"
        )
    if not isinstance(body, Mapping) or set(body) != {PARAMS_KEY}:
        raise ValueError(
            f"{path}: section {key!r} is not `{key}: {{{PARAMS_KEY}: ...}}` (rcl's params-file "
            f"form); the graph and `base` go under `{GRAPH_SECTION}: {PARAMS_KEY}:`"
        )
    params = body[PARAMS_KEY]
    if not isinstance(params, Mapping):
        raise ValueError(f"{path}: {key}.{PARAMS_KEY}: expected a mapping, got {params!r}")
    return dict(params)


def _graph_nodes(path: Path, nodes: Any) -> dict[str, dict[str, Any]]:
    where = f"{path}: {GRAPH_SECTION}.nodes"
    if not isinstance(nodes, Mapping):
        raise ValueError(f"{where}: expected a mapping of node names, got {nodes!r}")
    out = {}
    for name, entry in nodes.items():
        if not isinstance(entry, Mapping) or not set(entry) <= set(_ENTRY_KEYS):
            raise ValueError(f"{where}.{name}: expected a mapping of {_ENTRY_KEYS}, got {entry!r}")
        if "enabled" in entry and not isinstance(entry["enabled"], bool):
            raise ValueError(f"{where}.{name}.enabled: expected true or false")
        out[str(name)] = dict(entry)
    return out


def parse_profile(path: Path, data: Any) -> tuple[dict[str, Any], str | None]:
    """One params-file profile -> (its graph config, its `base` or None)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of `<node>: {{{PARAMS_KEY}: ...}}` sections")
    config: dict[str, Any] = {"common": {}, "nodes": {}}
    base = None
    for key, body in data.items():
        params = _section(path, key, body)
        if key == GRAPH_SECTION:
            unknown = set(params) - {"base", "nodes"}
            if unknown:
                raise ValueError(f"{path}: {GRAPH_SECTION}: unknown key(s) {sorted(unknown)}")
            base = params.get("base")
            if base is not None and (not isinstance(base, str) or not base):
                raise ValueError(f"{path}: {GRAPH_SECTION}.base: expected a profile or a path")
            for name, entry in _graph_nodes(path, params.get("nodes") or {}).items():
                config["nodes"].setdefault(name, {}).update(entry)
        elif key == WILDCARD:
            config["common"] = _flatten(params, f"{path}: {WILDCARD}")
        else:
            node = config["nodes"].setdefault(key, {})
            node["parameters"] = _flatten(params, f"{path}: {key}")
    return config, base


def _load(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ValueError(f"base: {path} includes itself ({chain})")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_ParamsLoader)  # noqa: S506
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    config, base = parse_profile(path, data)
    if base is None:
        return config
    parent = _load(resolve_config(base, path.parent), (*seen, path.resolve()))
    return merge(parent, config)


def load_graph_config(config: str | Path | None = None) -> dict[str, Any]:
    """The graph of a profile name (`sim`, `robot`) or a params-file path, `base` files merged."""
    path = resolve_config(config)
    data = _load(path, ())
    if not data["nodes"]:
        raise ValueError(f"{path}: no nodes (expected a `{GRAPH_SECTION}` section listing them)")
    for name, entry in data["nodes"].items():
        missing = [k for k in ("package", "executable") if not entry.get(k)]
        if missing:
            raise ValueError(
                f"{path}: node {name!r} has parameters but {GRAPH_SECTION}.nodes does not give "
                f"its {' and '.join(missing)} (a misspelt node name?); nodes: "
                f"{', '.join(n for n, e in data['nodes'].items() if e.get('package'))}"
            )
    return data


class _QuotedDumper(yaml.SafeDumper):
    """Quotes a string rcl would read as a bool or a number (`y`, `1e3`); PyYAML already
    quotes the ones its own reader would (`true`, `1.0`, "")."""


_QuotedDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style='"' if _rcl_types_plain(value) else None
    ),
)


def params_file_data(config: Mapping[str, Any]) -> dict[str, Any]:
    """A loaded (and overridden) graph config as one standard params file, `base` resolved:
    the graph section, `/**` with the common parameters (first: rcl lets a node's own section
    win over it), then each node's own parameters. Loading it gives the same node specs."""
    for name, entry in config["nodes"].items():
        for param, value in (entry.get("parameters") or {}).items():
            _check_rcl_value(f"{name}.{param}", value)
    graph = {
        name: {k: entry[k] for k in _ENTRY_KEYS if k in entry}
        for name, entry in config["nodes"].items()
    }
    out: dict[str, Any] = {GRAPH_SECTION: {PARAMS_KEY: {"nodes": graph}}}
    if config.get("common"):
        out[WILDCARD] = {PARAMS_KEY: dict(config["common"])}
    for name, entry in config["nodes"].items():
        if entry.get("parameters"):
            out[name] = {PARAMS_KEY: dict(entry["parameters"])}
    return out


def write_params_file(config: Mapping[str, Any], path: str | Path) -> Path:
    """Write `params_file_data(config)` to `path`: what the launch file hands every node, and
    what `ros2 run <pkg> <exe> --ros-args --params-file <path>` reads for one node."""
    path = Path(path)
    text = yaml.dump(params_file_data(config), Dumper=_QuotedDumper, sort_keys=False)
    path.write_text(
        "# Written by habc_control.graph.write_params_file: a profile with its base and\n"
        "# overrides merged. Pass it with --params-file.\n" + text,
        encoding="utf-8",
    )
    return path


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
