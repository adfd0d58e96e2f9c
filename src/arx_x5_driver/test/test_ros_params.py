"""Parameters with bounds, choices and read-only, as every node of the rig declares them."""

import pytest

from arx_x5_driver.ros_params import READ_AT_STARTUP, ParamSpec

pytestmark = pytest.mark.ros

SPECS = {
    "rate": ParamSpec(30.0, "rate [Hz]", bounds=(1.0, 100.0)),
    "every": ParamSpec(1, "every N ticks", bounds=(0, 10)),
    "mode": ParamSpec("hold", "pedal mode", choices=("hold", "toggle")),
    "cams": ParamSpec(["top"], "cameras", choices=("top", "left_wrist")),
    "task": ParamSpec("", "prompt", dynamic=True),
    "quality": ParamSpec(85, "JPEG quality", bounds=(1, 100), dynamic=True),
}


def _node(ros, **overrides):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    return Node(
        "params",
        context=ros,
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
    )


def test_declared_values_and_descriptors(ros):
    from arx_x5_driver.ros_params import declare_params

    node = _node(ros, rate=50.0)
    try:
        values = declare_params(node, SPECS)
        assert values["rate"] == 50.0 and values["mode"] == "hold" and values["cams"] == ["top"]
        (rate,) = node.describe_parameters(["rate"])
        assert rate.read_only and rate.additional_constraints == READ_AT_STARTUP
        assert (
            rate.floating_point_range[0].from_value,
            rate.floating_point_range[0].to_value,
        ) == (
            1.0,
            100.0,
        )
        (every,) = node.describe_parameters(["every"])
        assert (every.integer_range[0].from_value, every.integer_range[0].to_value) == (0, 10)
        (mode,) = node.describe_parameters(["mode"])
        assert "one of: hold, toggle" in mode.description
        (task,) = node.describe_parameters(["task"])
        assert not task.read_only
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rate": 500.0}, "rate: out of range [1.0, 100.0]"),
        ({"every": -1}, "every: out of range [0, 10]"),
        ({"mode": "tap"}, "mode: 'tap' is not one of ['hold', 'toggle']"),
        ({"cams": ["top", "wrist"]}, "cams: 'wrist' is not one of ['top', 'left_wrist']"),
        ({"rate": "fast"}, "rate: "),
    ],
)
def test_a_bad_startup_value_is_a_value_error_naming_it(ros, overrides, message):
    from arx_x5_driver.ros_params import declare_params

    node = _node(ros, **overrides)
    try:
        with pytest.raises(ValueError) as info:
            declare_params(node, SPECS)
        assert str(info.value).startswith(message), str(info.value)
    finally:
        node.destroy_node()


def test_run_time_changes_only_for_dynamic_parameters_and_within_their_rules(ros):
    from rclpy.parameter import Parameter

    from arx_x5_driver.ros_params import declare_params, on_dynamic_change

    node = _node(ros)
    applied = []
    try:
        declare_params(node, SPECS)
        on_dynamic_change(node, SPECS, applied.append)
        refused = node.set_parameters([Parameter("rate", value=40.0)])[0]
        assert not refused.successful and "read-only" in refused.reason
        out = node.set_parameters([Parameter("quality", value=500)])[0]
        assert not out.successful and "Min: 1, Max: 100" in out.reason
        ok = node.set_parameters([Parameter("task", value="fold the towel")])[0]
        assert ok.successful and applied == [{"task": "fold the towel"}]
        assert node.get_parameter("task").value == "fold the towel"
    finally:
        node.destroy_node()


def test_a_spec_whose_default_breaks_its_own_rules_is_refused():
    with pytest.raises(ValueError, match="outside its bounds"):
        ParamSpec(0.0, "x", bounds=(1.0, 2.0))
    with pytest.raises(ValueError, match="not among"):
        ParamSpec("z", "x", choices=("a", "b"))
    with pytest.raises(ValueError, match="apply to a number"):
        ParamSpec("a", "x", bounds=(0, 1))
