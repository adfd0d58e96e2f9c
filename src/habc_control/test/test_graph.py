"""The config -> node list function shared by the launch file and the runner (no ROS needed)."""

import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from habc_control.graph import OVERRIDES, PROFILES, apply_overrides, load_graph_config, node_specs

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


# --- profiles: sim (rollout.yaml) and robot (rollout_robot.yaml, an overlay on it) ---

ROBOT = ROOT / "config" / "rollout_robot.yaml"
README = ROOT / "README.md"


def _params(cfg, node):
    return cfg["nodes"][node].get("parameters") or {}


def test_robot_profile_is_the_real_rig():
    cfg = load_graph_config("robot")
    specs = {s.name: s.parameters for s in node_specs(cfg)}
    assert "cameras" in specs  # the RealSense node publishes the images
    arm, teleop = specs["arm_driver"], specs["teleop"]
    assert (arm["backend"], arm["camera_every"], arm["publish_expert"]) == ("arx5", 0, False)
    assert (teleop["input"], teleop["human_source"]) == ("pedal", "leader")
    assert teleop["pedal_device"].startswith("/dev/input/by-id/")
    assert specs["recorder"]["compressed_images"] is True
    for node in ("recorder", "episode_manager"):
        assert specs[node]["robot"] == "arx_x5_bimanual"
    assert specs["policy"]["image_size"] > 0  # 640x480 resized once in the policy node
    # the name works through the runner's and the launch file's call as a path does
    assert load_graph_config(str(ROBOT)) == cfg


def test_robot_profile_takes_everything_else_from_the_sim_profile():
    sim, robot = load_graph_config("sim"), load_graph_config("robot")
    overlay = yaml.safe_load(ROBOT.read_text())
    assert overlay["base"] == "rollout.yaml" and "base" not in robot
    assert robot["common"] == sim["common"]
    assert list(robot["nodes"]) == list(sim["nodes"])
    for node, entry in sim["nodes"].items():
        changed = (overlay["nodes"].get(node) or {}).get("parameters") or {}
        assert set(changed) <= set(entry["parameters"]), node  # the overlay adds no parameter
        for name, value in entry["parameters"].items():
            if name not in changed:
                assert robot["nodes"][node]["parameters"][name] == value, (node, name)


def test_sim_profile_is_rollout_yaml_unchanged_and_the_default():
    raw = yaml.safe_load(CONFIG.read_text())
    assert load_graph_config("sim") == raw
    assert load_graph_config() == raw and load_graph_config("") == raw
    assert _params(raw, "arm_driver")["backend"] == "sim"
    assert _params(raw, "recorder")["robot"].endswith("_sim")


def test_unknown_profile_and_missing_file_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^config 'robt': unknown profile; valid: sim, robot"):
        load_graph_config("robt")
    with pytest.raises(ValueError, match="no such file") as err:
        load_graph_config(tmp_path / "nope.yaml")
    assert "\n" not in str(err.value)


def test_base_merges_mappings_replaces_lists_and_resolves_profiles(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "common: {arms: [left, right], control_hz: 30.0}\n"
        "nodes:\n"
        "  a: {package: p, executable: e, parameters: {x: 1, keys: [k1, k2], new_in_base: 5}}\n"
        "  b: {package: p, executable: e, enabled: false, parameters: {y: 2}}\n"
    )
    (tmp_path / "site.yaml").write_text(
        "base: base.yaml\n"
        "common: {arms: [left]}\n"
        "nodes: {a: {parameters: {keys: [k3]}}, b: {enabled: true}}\n"
    )
    cfg = load_graph_config(tmp_path / "site.yaml")
    assert cfg["common"] == {"arms": ["left"], "control_hz": 30.0}
    a, b = (_params(cfg, n) for n in ("a", "b"))
    assert a == {"x": 1, "keys": ["k3"], "new_in_base": 5}  # a base parameter flows through
    assert b == {"y": 2} and cfg["nodes"]["b"]["enabled"] is True
    # a site file kept anywhere starts from the installed robot profile by name
    (tmp_path / "rig.yaml").write_text(
        "base: robot\nnodes: {cameras: {parameters: {serials: ['1', '2', '3']}}}\n"
    )
    rig = load_graph_config(tmp_path / "rig.yaml")
    assert _params(rig, "cameras")["serials"] == ["1", "2", "3"]
    assert _params(rig, "teleop")["input"] == "pedal"
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\nnodes: {}\n")
    with pytest.raises(ValueError, match="includes itself"):
        load_graph_config(tmp_path / "loop.yaml")


_DECLARED = re.compile(r'(?:declare\(\s*self,\s*|\bp\(\s*|declare_parameter\(\s*)"(\w+)"')


def declared_parameters(module: str) -> set[str]:
    """Parameter names a node module declares: its PARAMS table (arx_x5_driver.ros_params), or
    else read from its source."""
    table = getattr(importlib.import_module(module), "PARAMS", None)
    if table is not None:
        return set(table)
    source = Path(importlib.util.find_spec(module).origin).read_text()
    names = set(_DECLARED.findall(source))
    if "SafetyConfig.parameters()" in source:  # the arm driver declares the safety table
        from arx_x5_driver.safety import SafetyConfig

        names |= set(SafetyConfig.parameters())
    return names


@pytest.mark.parametrize("profile", ["sim", "robot"])
def test_every_profile_parameter_is_declared_by_its_node(profile):
    cfg = load_graph_config(profile)
    declared_somewhere = set()
    for name, entry in cfg["nodes"].items():  # disabled nodes too (cameras in sim)
        declared = declared_parameters(f"{entry['package']}.{entry['executable']}")
        assert declared, name  # the pattern still matches how the node declares
        undeclared = set(entry.get("parameters") or {}) - declared
        assert not undeclared, f"{profile}: nodes.{name} does not declare {sorted(undeclared)}"
        declared_somewhere |= declared
    assert set(cfg["common"]) <= declared_somewhere


def test_profiles_are_installed_with_the_package():
    setup = (ROOT / "src" / "habc_control" / "setup.cfg").read_text()
    assert "share/habc_control/config = ../../config/*.yaml" in setup
    for file in PROFILES.values():
        assert (ROOT / "config" / file).is_file(), file


def _fake_launch(monkeypatch):
    """Stand-ins for launch / launch_ros that record what the launch file builds."""

    class Action:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration(Action):
        def perform(self, context):
            return context[self.args[0]]

    names = {
        "launch": {"LaunchDescription": type("LaunchDescription", (Action,), {})},
        "launch.actions": {
            "DeclareLaunchArgument": type("DeclareLaunchArgument", (Action,), {}),
            "OpaqueFunction": type("OpaqueFunction", (Action,), {}),
        },
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": type("Node", (Action,), {})},
    }
    for module, attrs in names.items():
        mod = types.ModuleType(module)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, module, mod)


def test_launch_arguments_match_overrides_and_config_robot_starts_the_rig(monkeypatch):
    _fake_launch(monkeypatch)
    spec = importlib.util.spec_from_file_location("rollout_launch_fake", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (actions,) = mod.generate_launch_description().args
    *arguments, setup = actions
    assert [a.args[0] for a in arguments] == ["config", *OVERRIDES]
    assert all(a.kwargs["description"] for a in arguments)
    assert "pedal_device" in OVERRIDES
    device = "/dev/input/by-id/usb-Other_Pedal-event-kbd"
    context = dict.fromkeys(OVERRIDES, "") | {"config": "robot", "pedal_device": device}
    nodes = {n.kwargs["name"]: n.kwargs for n in setup.kwargs["function"](context)}
    assert "cameras" in nodes
    (teleop,) = nodes["teleop"]["parameters"]
    assert teleop["pedal_device"] == device and teleop["input"] == "pedal"
    (arm,) = nodes["arm_driver"]["parameters"]
    assert arm["backend"] == "arx5"


def _readme_robot_section() -> str:
    text = README.read_text()
    start = text.index("## On a robot PC")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_robot_section_matches_the_robot_profile():
    section = _readme_robot_section()
    assert "config:=robot" in section and "--config robot" in section
    cfg = load_graph_config("robot")
    overlay = yaml.safe_load(ROBOT.read_text())
    stated = dict(re.findall(r"`(\w+\.\w+): ([^`]+)`", section))
    for node, entry in overlay["nodes"].items():
        keys = [f"{node}.{p}" for p in entry.get("parameters") or {}]
        keys += [f"{node}.enabled"] if "enabled" in entry else []
        for key in keys:
            assert key in stated, f"README robot section does not say `{key}: ...`"
    for key, text in stated.items():
        node, param = key.split(".")
        entry = cfg["nodes"][node]
        actual = entry.get("enabled", True) if param == "enabled" else entry["parameters"][param]
        assert yaml.safe_load(text) == actual, key


# --- overrides take the configured parameter's ROS type ---


def test_overrides_are_read_by_the_configured_type():
    base = load_graph_config(CONFIG)
    cfg = apply_overrides(
        base,
        {
            "teleop.sim_schedule": "[]",  # empty: the simulated operator never presses
            "teleop.mode": "true",  # a string parameter: verbatim, not YAML's True
            "arm_driver.workspace_min": "[0, 0, 0.1]",  # ints in a double array
            "cameras.enabled": "false",
        },
    )
    specs = {s.name: s.parameters for s in node_specs(cfg)}
    assert specs["teleop"]["sim_schedule"] == []
    assert specs["teleop"]["mode"] == "true"
    assert specs["arm_driver"]["workspace_min"] == [0.0, 0.0, 0.1]
    assert all(isinstance(v, float) for v in specs["arm_driver"]["workspace_min"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"teleop.debounce_s": "abc"}, "expected a number like 0.03, got 'abc'"),
        ({"policy.horizon": "5.5"}, "expected an integer like 50, got 5.5"),
        ({"policy.horizon": "true"}, "expected an integer like 50, got True"),
        ({"arm_driver.publish_expert": "1"}, "expected true or false, got 1"),
        ({"teleop.sim_schedule": "left:1:2"}, "expected a list of strings"),
        ({"cameras.serials": "[123, 456, 789]"}, "quote them"),
        ({"arm_driver.workspace_min": "0.1"}, "expected a list of numbers"),
        ({"policy.task": "x", "teleop.x": "{a: 1}"}, "expected a value or a list"),
        ({"teleop.pedal_keys": "[a, [b]]"}, "a ROS list holds plain values"),
        ({"teleop.newlist": "[1, a]"}, "list items of mixed types"),
        ({"teleop.sim_schedule": "[left"}, "is not valid YAML"),
        ({"cameras.enabled": "maybe"}, "expected true or false, got 'maybe'"),
        ({"teleop.": "1"}, "no parameter after 'teleop'"),
    ],
)
def test_an_override_of_the_wrong_type_names_itself(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_overrides(load_graph_config(CONFIG), override)


def test_an_empty_list_in_an_overlay_replaces_the_base_list(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("base: sim\nnodes:\n  teleop:\n    parameters:\n      sim_schedule: []\n")
    specs = {s.name: s.parameters for s in node_specs(load_graph_config(site))}
    assert specs["teleop"]["sim_schedule"] == []
