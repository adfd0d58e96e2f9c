"""The config -> node list function shared by the launch file and the runner (no ROS needed)."""

import importlib.util
from pathlib import Path

import pytest

from habc_control.graph import apply_overrides, load_graph_config, node_specs

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "config" / "rollout.yaml"
LAUNCH = ROOT / "launch" / "rollout.launch.py"


def test_config_yields_the_rollout_graph():
    specs = {s.name: s for s in node_specs(load_graph_config(CONFIG))}
    assert set(specs) == {
        "arm_driver",
        "teleop",
        "command_mux",
        "policy",
        "episode_manager",
        "recorder",
    }  # cameras are disabled: the sim rig publishes the camera topics
    assert specs["arm_driver"].module == "arx_x5_driver.arm_node"
    assert specs["policy"].parameters["execute_steps"] == 25
    assert specs["policy"].parameters["horizon"] == 50
    # common parameters reach every node, a node's own win
    assert all(s.parameters["arms"] == ["left", "right"] for s in specs.values())
    assert all(s.parameters["control_hz"] == 30.0 for s in specs.values())


def test_every_configured_node_module_has_node_and_main():
    for spec in node_specs(load_graph_config(CONFIG)):
        spec_found = importlib.util.find_spec(spec.module)
        assert spec_found is not None, spec.module


def test_overrides_short_and_dotted():
    cfg = apply_overrides(
        load_graph_config(CONFIG),
        {
            "backend": "arx5",
            "teleop.debounce_s": "0.05",
            "cameras.enabled": "true",
            "data_root": "/data/x",
        },
    )
    specs = {s.name: s for s in node_specs(cfg)}
    assert specs["arm_driver"].parameters["backend"] == "arx5"
    assert specs["teleop"].parameters["debounce_s"] == 0.05
    typed = apply_overrides(load_graph_config(CONFIG), {"arm_driver.watchdog_s": "1"})
    assert isinstance(node_specs(typed)[0].parameters["watchdog_s"], float)  # stays a double
    assert specs["recorder"].parameters["data_root"] == "/data/x"
    assert "enabled" not in specs["cameras"].parameters  # a node switch, not a parameter
    with pytest.raises(ValueError, match="no node"):
        apply_overrides(load_graph_config(CONFIG), {"nosuch.param": "1"})
    with pytest.raises(ValueError, match="override"):
        apply_overrides(load_graph_config(CONFIG), {"speed": "1"})


def test_launch_file_builds_from_the_same_config_and_guards_missing_launch():
    spec = importlib.util.spec_from_file_location("rollout_launch", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # no `launch` here: the import guard must hold
    assert mod.node_specs is node_specs
    if mod.LaunchDescription is None:
        with pytest.raises(RuntimeError, match="habc-rollout"):
            mod.generate_launch_description()
