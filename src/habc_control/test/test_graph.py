"""The config -> node list function shared by the launch file and the runner (no ROS needed)."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from habc_control.graph import (
    GRAPH_SECTION,
    PROFILES,
    apply_overrides,
    load_graph_config,
    node_specs,
    parse_profile,
    write_params_file,
)

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "config" / "rollout.yaml"


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
    overlay, base = parse_profile(ROBOT, yaml.safe_load(ROBOT.read_text()))
    assert base == "rollout.yaml" and "base" not in robot
    assert robot["common"] == sim["common"]
    assert list(robot["nodes"]) == list(sim["nodes"])
    for node, entry in sim["nodes"].items():
        changed = (overlay["nodes"].get(node) or {}).get("parameters") or {}
        assert set(changed) <= set(entry["parameters"]), node  # the overlay adds no parameter
        for name, value in entry["parameters"].items():
            if name not in changed:
                assert robot["nodes"][node]["parameters"][name] == value, (node, name)


def test_sim_profile_is_rollout_yaml_unchanged_and_the_default():
    raw, base = parse_profile(CONFIG, yaml.safe_load(CONFIG.read_text()))
    assert base is None
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


def _profile(path, text):
    path.write_text(text)
    return path


def test_base_merges_mappings_replaces_lists_and_resolves_profiles(tmp_path):
    _profile(
        tmp_path / "base.yaml",
        f"{GRAPH_SECTION}:\n  ros__parameters:\n    nodes:\n"
        "      a: {package: p, executable: e}\n"
        "      b: {package: p, executable: e, enabled: false}\n"
        "/**: {ros__parameters: {arms: [left, right], control_hz: 30.0}}\n"
        "a: {ros__parameters: {x: 1, keys: [k1, k2], new_in_base: 5}}\n"
        "b: {ros__parameters: {y: 2}}\n",
    )
    _profile(
        tmp_path / "site.yaml",
        f"{GRAPH_SECTION}:\n  ros__parameters:\n    base: base.yaml\n"
        "    nodes: {b: {enabled: true}}\n"
        "/**: {ros__parameters: {arms: [left]}}\n"
        "a: {ros__parameters: {keys: [k3]}}\n",
    )
    cfg = load_graph_config(tmp_path / "site.yaml")
    assert cfg["common"] == {"arms": ["left"], "control_hz": 30.0}
    a, b = (_params(cfg, n) for n in ("a", "b"))
    assert a == {"x": 1, "keys": ["k3"], "new_in_base": 5}  # a base parameter flows through
    assert b == {"y": 2} and cfg["nodes"]["b"]["enabled"] is True
    # a site file kept anywhere starts from the installed robot profile by name
    _profile(
        tmp_path / "rig.yaml",
        f"{GRAPH_SECTION}: {{ros__parameters: {{base: robot}}}}\n"
        "cameras: {ros__parameters: {serials: ['1', '2', '3']}}\n",
    )
    rig = load_graph_config(tmp_path / "rig.yaml")
    assert _params(rig, "cameras")["serials"] == ["1", "2", "3"]
    assert _params(rig, "teleop")["input"] == "pedal"
    _profile(
        tmp_path / "loop.yaml", f"{GRAPH_SECTION}: {{ros__parameters: {{base: loop.yaml}}}}\n"
    )
    with pytest.raises(ValueError, match="includes itself"):
        load_graph_config(tmp_path / "loop.yaml")


def test_nested_parameter_mappings_are_dotted_names_as_rcl_reads_them(tmp_path):
    site = _profile(
        tmp_path / "site.yaml",
        f"{GRAPH_SECTION}: {{ros__parameters: {{base: sim}}}}\n"
        "teleop: {ros__parameters: {extra: {depth: 2}}}\n",
    )
    assert _params(load_graph_config(site), "teleop")["extra.depth"] == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: robot\n", "is not `base: {ros__parameters: ...}`"),
        ("nodes: {teleop: {parameters: {}}}\n", "the graph and `base` go under"),
        ("/rig1/teleop: {ros__parameters: {x: 1}}\n", "namespaced sections are not supported"),
        ("teleop: {ros__parameters: {sim_schedule: []}}\n", "teleop.sim_schedule: an empty list"),
        ("teleop: {ros__parameters: {debounce_s: }}\n", "teleop.debounce_s: no value"),
        ("arm_driver: {ros__parameters: {workspace_min: [0, 0.1, 0.2]}}\n", "of one type"),
        ("teleop: {ros__parameters: {mode: y}}\n", "'y' is a string here but rcl reads it"),
        ("policy: {ros__parameters: {task: 1e3}}\n", "quote it"),
        ("policy: {ros__parameters: {horizon: 5_0}}\n", "a string to rcl"),
        ("a: &x {ros__parameters: {v: 1}}\nb: *x\n", "aliases are refused by rcl"),
        ("arm_drvier: {ros__parameters: {backend: sim}}\n", "node 'arm_drvier' has parameters"),
        (f"{GRAPH_SECTION}: {{ros__parameters: {{nodes: {{x: {{pkg: p}}}}}}}}\n", "nodes.x"),
    ],
)
def test_a_profile_rcl_would_read_differently_is_refused_naming_the_place(tmp_path, text, message):
    header = f"{GRAPH_SECTION}: {{ros__parameters: {{base: sim}}}}\n"
    site = _profile(tmp_path / "site.yaml", text if "rollout_graph" in text else header + text)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        load_graph_config(site)
    assert str(site) in str(err.value)


@pytest.mark.parametrize("profile", ["sim", "robot"])
def test_the_written_params_file_gives_the_same_graph(profile, tmp_path):
    cfg = apply_overrides(
        load_graph_config(profile), {"task": "y", "checkpoint": "1e3", "backend": "kinematic"}
    )
    path = write_params_file(cfg, tmp_path / "params.yaml")
    again = load_graph_config(path)  # quoted where rcl would read a bool or a number
    assert node_specs(again) == node_specs(cfg)
    assert list(yaml.safe_load(path.read_text()))[:2] == [GRAPH_SECTION, "/**"]
    with pytest.raises(ValueError, match="teleop.sim_schedule: an empty list"):
        write_params_file(apply_overrides(cfg, {"teleop.sim_schedule": "[]"}), path)


@pytest.mark.ros
@pytest.mark.parametrize("profile", ["sim", "robot"])
def test_rcl_gives_each_node_of_the_params_file_the_runners_parameters(profile, tmp_path):
    """The real rcl parser (rclpy's --params-file) reads the shipped profile, stacked on its base
    as a user would pass them, and each node name gets exactly its spec's parameters."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    files = [CONFIG] if profile == "sim" else [CONFIG, ROBOT]
    args = ["x", "--ros-args"] + [a for f in files for a in ("--params-file", str(f))]
    context = Context()
    rclpy.init(args=args, context=context, domain_id=199)
    try:
        for spec in node_specs(load_graph_config(profile)):
            node = Node(
                spec.name, context=context, automatically_declare_parameters_from_overrides=True
            )
            got = {
                k: v.value
                for k, v in node._parameters.items()
                if k not in ("use_sim_time", "start_type_description_service")
            }
            node.destroy_node()
            got = {
                k: list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v
                for k, v in got.items()
            }
            assert got == spec.parameters, spec.name
    finally:
        rclpy.shutdown(context=context)


_DECLARED = re.compile(
    r'(?:declare\(\s*self,\s*|\bp\(\s*|declare_parameter\(\s*)"(\w+)"'
    r'|"(\w+)":\s*(?:ParamSpec\(|[A-Z][A-Z_]+,)'  # a table of ParamSpecs (ros_params)
)
# A node module may keep its parameter table in a sibling `*_params` module.
_PARAMS_MODULE = re.compile(r"^from (\w+)\.(\w*params) import", re.MULTILINE)


def declared_parameters(module: str) -> set[str]:
    """Parameter names a node module declares, read from its source (no rclpy needed)."""
    source = Path(importlib.util.find_spec(module).origin).read_text()
    for package, name in _PARAMS_MODULE.findall(source):
        if name != "ros_params":  # the shared helpers, not a node's table
            source += Path(importlib.util.find_spec(f"{package}.{name}").origin).read_text()
    names = {a or b for a, b in _DECLARED.findall(source)}
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


def _readme_robot_section() -> str:
    text = README.read_text()
    start = text.index("## On a robot PC")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_robot_section_matches_the_robot_profile():
    section = _readme_robot_section()
    assert "config:=robot" in section and "--config robot" in section
    cfg = load_graph_config("robot")
    overlay, _base = parse_profile(ROBOT, yaml.safe_load(ROBOT.read_text()))
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


def test_an_empty_list_override_reaches_the_runner_but_not_a_params_file(tmp_path):
    # rcl has no empty list (`[]` in a params file leaves a parameter without a value); the
    # runner passes one as an unset parameter, so `teleop.sim_schedule=[]` still works there.
    cfg = apply_overrides(load_graph_config("sim"), {"teleop.sim_schedule": "[]"})
    specs = {s.name: s.parameters for s in node_specs(cfg)}
    assert specs["teleop"]["sim_schedule"] == []
