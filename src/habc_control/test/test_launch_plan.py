"""The launch file's decisions (habc_control.launch_plan) and the URDF prefixing, without ROS's
launch: what `ros2 launch habc_control rollout.launch.py ...` starts for given arguments."""

import importlib.util
import re
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from habc_control import launch_plan
from habc_control.graph import OVERRIDES, load_graph_config, node_specs
from habc_control.launch_plan import (
    FROM_PROFILE,
    launch_arguments,
    plan,
    realsense_nodes,
    robot_state_publishers,
)
from habc_control.urdf_prefix import prefix_urdf
from habc_core.contract import base_frame, camera_frame, image_topic, joint_names

ROOT = Path(__file__).resolve().parents[3]
LAUNCH = ROOT / "launch" / "rollout.launch.py"

TINY_URDF = """<?xml version="1.0"?>
<robot name="tiny">
  <link name="base_link"/>
  <link name="link1"/>
  <link name="finger"/>
  <joint name="joint1" type="revolute">
    <parent link="base_link"/><child link="link1"/>
    <axis xyz="0 0 1"/><limit lower="-1" upper="1" effort="1" velocity="1"/>
  </joint>
  <joint name="finger_joint" type="prismatic">
    <parent link="link1"/><child link="finger"/>
    <mimic joint="joint1" multiplier="0.5"/>
    <limit lower="0" upper="0.04" effort="1" velocity="1"/>
  </joint>
  <transmission name="t1"><joint name="joint1"/></transmission>
  <gazebo reference="link1"/>
</robot>
"""


def _values(**given):
    values = {a.name: a.default for a in launch_arguments()}
    values.update(given)
    return values


def test_urdf_prefix_renames_links_joints_and_every_reference():
    robot = ET.fromstring(prefix_urdf(TINY_URDF, "left_"))
    assert [e.get("name") for e in robot.findall("link")] == [
        "left_base_link",
        "left_link1",
        "left_finger",
    ]
    assert [e.get("name") for e in robot.findall("joint")] == ["left_joint1", "left_finger_joint"]
    joint = robot.find("joint[@name='left_finger_joint']")
    assert joint.find("parent").get("link") == "left_link1"
    assert joint.find("child").get("link") == "left_finger"
    assert joint.find("mimic").get("joint") == "left_joint1"
    assert robot.find("transmission/joint").get("name") == "left_joint1"
    assert robot.find("gazebo").get("reference") == "left_link1"
    assert robot.find("transmission").get("name") == "t1"  # not a link or joint: unchanged


@pytest.mark.parametrize(
    ("urdf", "prefix", "message"),
    [
        (TINY_URDF, "left arm", "prefix: 'left arm' is not a name"),
        (
            "<robot><link name='a'/><joint name='j'><parent link='b'/></joint></robot>",
            "l_",
            "link 'b'",
        ),
        ("<robot><link", "l_", "urdf: not valid XML"),
        ("<sdf/>", "l_", "expected <robot>"),
    ],
)
def test_urdf_prefix_refuses_what_robot_state_publisher_could_not_use(urdf, prefix, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        prefix_urdf(urdf, prefix)


def test_the_shipped_x5_urdf_gets_our_joint_names_and_base_frame():
    path = launch_plan.default_urdf()
    (left,) = robot_state_publishers(["left"], path.read_text())
    robot = ET.fromstring(left.parameters[0]["robot_description"])
    joints = {e.get("name") for e in robot.findall("joint")}
    # the arm joints of our JointState are the URDF's; the gripper is no URDF joint in X5.urdf
    assert set(joint_names("left")[:6]) <= joints
    assert base_frame("left") in {e.get("name") for e in robot.findall("link")}
    assert (left.namespace, left.remappings) == (
        "left_arm",
        [("joint_states", "/left_arm/joint_states")],
    )


def test_launch_arguments_have_descriptions_choices_and_real_defaults():
    args = {a.name: a for a in launch_arguments()}
    assert list(args)[: 1 + len(OVERRIDES)] == ["config", *OVERRIDES]
    assert all(a.description for a in args.values())
    for a in args.values():  # launch refuses a default outside the choices
        assert a.choices is None or a.default in a.choices, a.name
    assert args["config"].default == "sim" and "path" in args["config"].description
    assert args["backend"].choices == (FROM_PROFILE, "sim", "arx5", "kinematic")
    assert args["input"].choices == (FROM_PROFILE, "pedal", "keyboard", "sim_operator")
    assert args["camera_driver"].choices == ("habc", "realsense2_camera")
    assert args["robot_state_publisher"].choices == ("true", "false")


def test_the_choice_lists_are_the_nodes_own():
    from arx_x5_driver.arm_node import BACKENDS
    from habc_control.teleop_node import INPUTS

    assert sorted(BACKENDS) == sorted(launch_plan.BACKEND_CHOICES)
    assert sorted(INPUTS) == sorted(launch_plan.INPUT_CHOICES)


def test_every_node_gets_the_one_params_file_of_the_profile_and_overrides(tmp_path):
    device = "/dev/input/by-id/usb-Other_Pedal-event-kbd"
    nodes = {n.name: n for n in plan(_values(config="robot", pedal_device=device), tmp_path)}
    assert set(nodes) == {s.name for s in node_specs(load_graph_config("robot"))}
    files = {tuple(n.parameters) for n in nodes.values()}
    (params_file,) = {f for (f,) in files}
    specs = {s.name: s.parameters for s in node_specs(load_graph_config(params_file))}
    assert specs["teleop"]["pedal_device"] == device and specs["teleop"]["input"] == "pedal"
    assert specs["arm_driver"]["backend"] == "arx5"  # `profile`: the robot profile's backend
    (kinematic, *_rest) = plan(_values(backend="kinematic"), tmp_path)
    sim = {s.name: s.parameters for s in node_specs(load_graph_config(kinematic.parameters[0]))}
    assert sim["arm_driver"]["backend"] == "kinematic"


def test_realsense2_camera_replaces_our_camera_node_on_the_same_topics(tmp_path):
    site = tmp_path / "rig.yaml"
    site.write_text(
        "rollout_graph: {ros__parameters: {base: robot}}\n"
        "cameras: {ros__parameters: {serials: ['111', '222', '333']}}\n"
    )
    nodes = plan(_values(config=str(site), camera_driver="realsense2_camera"), tmp_path)
    assert "cameras" not in {n.name for n in nodes if n.package == "habc_control"}
    rs = [n for n in nodes if n.package == "realsense2_camera"]
    assert [n.name for n in rs] == ["top", "left_wrist", "right_wrist"]
    for node, serial in zip(rs, ["111", "222", "333"], strict=True):
        params = node.parameters[0]
        # realsense-ros: /<namespace>/<camera_name>/color/image_raw, <name>_color_optical_frame
        assert f"/{node.namespace}/{params['camera_name']}/color/image_raw" == image_topic(
            node.name
        )
        assert f"{params['camera_name']}_color_optical_frame" == camera_frame(node.name)
        assert params["serial_no"] == serial and params["rgb_camera.color_profile"] == "640x480x30"
    with pytest.raises(ValueError, match="cameras.serials: no serial for top, left_wrist"):
        plan(_values(config="robot", camera_driver="realsense2_camera"), tmp_path)
    # the sim profile has no camera node: the choice changes nothing there
    assert not [
        n
        for n in plan(_values(camera_driver="realsense2_camera"), tmp_path)
        if n.package == "realsense2_camera"
    ]


def test_realsense_camera_settings_are_checked():
    cams = {"names": ["top"], "serials": ["1"], "width": 640, "height": 0, "fps": 30}
    with pytest.raises(ValueError, match="cameras.height: expected a positive integer, got 0"):
        realsense_nodes(cams)
    with pytest.raises(ValueError, match="camera"):
        realsense_nodes({**cams, "names": ["nosuch"], "height": 480})


def test_robot_state_publisher_per_arm_from_a_urdf_argument(tmp_path):
    urdf = tmp_path / "arm.urdf"
    urdf.write_text(TINY_URDF)
    nodes = plan(_values(robot_state_publisher="true", urdf=str(urdf)), tmp_path)
    rsp = [n for n in nodes if n.package == "robot_state_publisher"]
    assert [n.namespace for n in rsp] == ["left_arm", "right_arm"]
    assert "right_joint1" in rsp[1].parameters[0]["robot_description"]
    with pytest.raises(ValueError, match="urdf: '/nope.urdf': no such file"):
        plan(_values(robot_state_publisher="true", urdf="/nope.urdf"), tmp_path)
    with pytest.raises(ValueError, match="robot_state_publisher: 'yes' is not one of true, false"):
        plan(_values(robot_state_publisher="yes"), tmp_path)


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
            name: type(name, (Action,), {})
            for name in ("DeclareLaunchArgument", "OpaqueFunction", "LogInfo")
        },
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": type("Node", (Action,), {})},
    }
    for module, attrs in names.items():
        mod = types.ModuleType(module)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, module, mod)


def _load_launch_file(name):
    spec = importlib.util.spec_from_file_location(name, LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_launch_file_without_launch_points_to_habc_rollout():
    mod = _load_launch_file("rollout_launch")  # no `launch` here: the import guard must hold
    assert mod.plan is plan
    if mod.LaunchDescription is None:
        with pytest.raises(RuntimeError, match="habc-rollout"):
            mod.generate_launch_description()


def test_launch_file_declares_the_plans_arguments_and_starts_its_nodes(monkeypatch):
    _fake_launch(monkeypatch)
    mod = _load_launch_file("rollout_launch_fake")
    (actions,) = mod.generate_launch_description().args
    *arguments, setup = actions
    assert [a.args[0] for a in arguments] == [a.name for a in launch_arguments()]
    assert all(a.kwargs["description"] for a in arguments)
    context = {a.name: a.default for a in launch_arguments()} | {"config": "robot"}
    log, *nodes = setup.kwargs["function"](context)
    by_name = {n.kwargs["name"]: n.kwargs for n in nodes}
    assert "cameras" in by_name
    (params_file,) = by_name["arm_driver"]["parameters"]
    assert params_file in log.kwargs["msg"]
    arm = {s.name: s for s in node_specs(load_graph_config(params_file))}["arm_driver"]
    assert arm.parameters["backend"] == "arx5"


def test_node_names_in_the_profile_are_the_names_the_nodes_give_themselves():
    for spec in node_specs(_enable_all(load_graph_config("robot"))):
        source = Path(importlib.util.find_spec(spec.module).origin).read_text()
        assert re.search(rf'super\(\).__init__\(\s*"{spec.name}"', source), spec.name


def _enable_all(cfg):
    return {**cfg, "nodes": {n: {**e, "enabled": True} for n, e in cfg["nodes"].items()}}
