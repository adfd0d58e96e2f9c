"""Node parameters declared the ROS 2 way: a description, a range or a set of choices, and
read-only unless a change at run time is safe.

Every node of the rig (the arm driver here, the habc_control nodes) declares its parameters
through `declare_params`, so `ros2 param describe` shows the bounds, an out-of-range value is
refused by rclpy itself with the range in its reason, and the few parameters marked `dynamic`
are checked against the same rules when they change. Lives in arx_x5_driver, the lowest package
with nodes (like node_main).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from habc_core.contract import MODE_BY_SPACE
from habc_core.features import ARM_NAMES

# What `ros2 param describe` says of a parameter that is read once at startup.
READ_AT_STARTUP = "read at startup: restart the node to change it"


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its default, what it means, and what values it accepts.

    `bounds` (inclusive) apply to an int or float parameter; `choices` to a string parameter or
    to every entry of a string list. `dynamic` parameters may be changed while the node runs,
    validated by the same bounds and choices; the rest are read-only.
    """

    default: Any
    description: str
    bounds: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    dynamic: bool = False

    def __post_init__(self) -> None:
        if self.bounds is not None:
            if isinstance(self.default, bool) or not isinstance(self.default, (int, float)):
                raise ValueError(f"bounds: apply to a number, not the default {self.default!r}")
            lo, hi = self.bounds
            if not lo <= self.default <= hi:
                raise ValueError(f"default {self.default!r} is outside its bounds [{lo}, {hi}]")
        if self.choices and _entries(self.default) - set(self.choices):
            raise ValueError(f"default {self.default!r} is not among {list(self.choices)}")

    def descriptor(self) -> ParameterDescriptor:
        text = self.description
        if self.choices:
            text += f" (one of: {', '.join(self.choices)})"
        d = ParameterDescriptor(description=text, read_only=not self.dynamic)
        d.additional_constraints = "may change at run time" if self.dynamic else READ_AT_STARTUP
        if self.bounds is not None:
            lo, hi = self.bounds
            if isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
            else:
                d.floating_point_range = [
                    FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
                ]
        return d

    def check(self, name: str, value: Any) -> str:
        """Why `value` is refused ("" when it is fine): the choices (rclpy checks bounds)."""
        if not self.choices or value is None:
            return ""
        bad = sorted(_entries(value) - set(self.choices))
        if bad:
            return f"{name}: {bad[0]!r} is not one of {list(self.choices)}"
        return ""


def _entries(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, Sequence):
        return {str(v) for v in value if v}
    return set()


def declare_params(node: Node, specs: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Declare every parameter of `specs` and return their values by name.

    A value outside its bounds or choices, or of the wrong type, is a ValueError naming the
    parameter and what it accepts (the node's one-line startup error, not a traceback).
    """
    values = {}
    for name, spec in specs.items():
        try:
            value = node.declare_parameter(name, spec.default, spec.descriptor()).value
        except ParameterException as exc:
            raise ValueError(_plain(name, spec, exc)) from None
        reason = spec.check(name, value)
        if reason:
            raise ValueError(reason)
        values[name] = value
    return values


def _plain(name: str, spec: ParamSpec, exc: ParameterException) -> str:
    if spec.bounds is not None and "out of range" in str(exc):
        lo, hi = spec.bounds
        return f"{name}: out of range [{lo}, {hi}]: {exc}"
    return f"{name}: {exc}"


def on_dynamic_change(
    node: Node,
    specs: Mapping[str, ParamSpec],
    apply: Callable[[dict[str, Any]], None],
) -> None:
    """Check a run-time change of the `dynamic` parameters by their choices (rclpy has already
    refused read-only ones and values out of range), then hand the new values to `apply`.

    Call after `declare_params`: the callback would otherwise also see the declarations.
    """

    def changed(params: list[Parameter]) -> SetParametersResult:
        for p in params:
            spec = specs.get(p.name)
            reason = spec.check(p.name, p.value) if spec is not None else ""
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        apply({p.name: p.value for p in params})
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(changed)


# Declared alike by every node of the graph (the graph file gives them to all nodes at once).
ARMS = ParamSpec(list(ARM_NAMES), "arm names, in action order", choices=ARM_NAMES)
CONTROL_HZ = ParamSpec(30.0, "control rate [Hz]: the arm driver's tick", bounds=(1.0, 500.0))
ACTION_SPACE = ParamSpec(
    "ee", "command space: ee (xyz + 6-D rotation) or joint", choices=tuple(MODE_BY_SPACE)
)
