"""What launch/rollout.launch.py starts, as plain data (no launch, no rclpy import).

The launch file only turns the `NodeLaunch`es of `plan()` into launch_ros Nodes, so everything it
decides is tested here without ROS: the launch arguments (with descriptions, choices and real
defaults), the graph profile with its overrides written as one standard params file for every
node, the camera driver (our camera_node or realsense2_camera, publishing the same topics) and
one robot_state_publisher per arm from the X5 URDF with our prefixed joint and link names.

The in-process runner (`habc-rollout`) supports only our camera node and no robot_state_publisher.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from habc_control.graph import (
    OVERRIDES,
    PROFILES,
    apply_overrides,
    load_graph_config,
    node_specs,
    write_params_file,
)
from habc_control.urdf_prefix import prefix_urdf
from habc_core.contract import base_frame, image_topic, joint_states_topic

# The value of a profile-dependent argument that keeps what the profile says (a launch argument
# with choices needs its default among them, and `backend:=sim` as a default would override the
# robot profile's arx5).
FROM_PROFILE = "profile"
# Kept equal to arx_x5_driver.arm_node.BACKENDS and teleop_node.INPUTS by test_launch_plan (both
# modules import rclpy, which this one does not).
BACKEND_CHOICES = ("sim", "arx5", "kinematic")
INPUT_CHOICES = ("pedal", "keyboard", "sim_operator")
CAMERA_DRIVERS = ("habc", "realsense2_camera")
BOOLS = ("true", "false")
# The realsense-ros node publishes `/<camera_namespace>/<camera_name>/color/image_raw`.
REALSENSE_NAMESPACE = "camera"
# The URDF arx5-interface ships (the model the SDK's kinematics use).
ARX5_URDF = ("arx5_interface", "models/X5.urdf")


@dataclass(frozen=True)
class Argument:
    """One DeclareLaunchArgument."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NodeLaunch:
    """One launch_ros Node: the keyword arguments it is built with."""

    package: str
    executable: str
    name: str
    namespace: str = ""
    parameters: list[Any] = field(default_factory=list)  # params-file paths and dicts
    remappings: list[tuple[str, str]] = field(default_factory=list)


def launch_arguments() -> list[Argument]:
    """The launch file's arguments: `config`, the short overrides, then the launch options."""
    args = [
        Argument(
            "config",
            "sim",
            f"graph profile: {' or '.join(PROFILES)} (config/rollout_robot.yaml), or the path of "
            "a params-file profile such as a site file with `base: robot` (a path, so no choice "
            "list)",
        )
    ]
    choices = {"backend": BACKEND_CHOICES, "input": INPUT_CHOICES}
    for key, (_node, _param, text) in OVERRIDES.items():
        if key in choices:
            args.append(
                Argument(
                    key,
                    FROM_PROFILE,
                    f"{text}; {FROM_PROFILE!r}: the profile's",
                    (FROM_PROFILE, *choices[key]),
                )
            )
        else:
            args.append(Argument(key, "", f"{text}; empty: the profile's"))
    args += [
        Argument(
            "camera_driver",
            "habc",
            "who publishes /camera/<name>/color/image_raw when the profile enables `cameras`: "
            "habc (our camera_node, pyrealsense2) or realsense2_camera (one realsense-ros node "
            "per camera, from cameras.names / serials / width / height / fps)",
            CAMERA_DRIVERS,
        ),
        Argument(
            "robot_state_publisher",
            "false",
            "start one robot_state_publisher per arm (namespace <arm>_arm) on the URDF with its "
            "links and joints prefixed <arm>_, so /tf has <arm>_base_link .. for our joint states",
            BOOLS,
        ),
        Argument(
            "urdf",
            "",
            "the arm's URDF for robot_state_publisher; empty: the X5.urdf arx5-interface ships",
        ),
    ]
    return args


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def graph_config(values: Mapping[str, str]) -> dict[str, Any]:
    """The profile of `values['config']` with the non-default short overrides applied."""
    overrides = {
        key: values[key] for key in OVERRIDES if values.get(key, "") not in ("", FROM_PROFILE)
    }
    return apply_overrides(load_graph_config(values.get("config") or None), overrides)


def default_urdf() -> Path:
    """X5.urdf of the installed arx5-interface, found without importing its SDK bindings."""
    package, relative = ARX5_URDF
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"urdf: empty and {package} is not installed; give urdf:=<path>")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ValueError(f"urdf: empty and {path} does not exist; give urdf:=<path>")
    return path


def realsense_nodes(cameras: Mapping[str, Any]) -> list[NodeLaunch]:
    """One realsense2_camera node per camera, on the topics and frames our camera node uses:
    namespace `camera` + name `<cam>` gives `/camera/<cam>/color/image_raw` and the frame
    `<cam>_color_optical_frame`; JPEG on `.../image_raw/compressed` comes from image_transport's
    compressed plugin (compressed_image_transport)."""
    names, serials = list(cameras.get("names") or []), list(cameras.get("serials") or [])
    if len(names) != len(serials):
        raise ValueError(f"cameras.serials: need one per camera {names}, got {serials}")
    empty = [name for name, serial in zip(names, serials, strict=True) if not serial]
    if empty:
        # realsense2_camera with no serial opens whichever device it finds first: with three
        # cameras the images would land on the wrong topics.
        raise ValueError(
            f"cameras.serials: no serial for {', '.join(empty)}; realsense2_camera would open "
            f"any camera (list them with `rs-enumerate-devices -s`)"
        )
    for key in ("width", "height", "fps"):
        value = cameras.get(key)
        if type(value) is not int or value <= 0:
            raise ValueError(f"cameras.{key}: expected a positive integer, got {value!r}")
    profile = f"{cameras['width']}x{cameras['height']}x{cameras['fps']}"
    out = []
    for name, serial in zip(names, serials, strict=True):
        image_topic(name)  # a name outside the contract's cameras is refused here, by name
        params = {
            "camera_name": name,
            "serial_no": str(serial),
            "enable_color": True,
            "enable_depth": False,
            "enable_infra1": False,
            "enable_infra2": False,
            "rgb_camera.color_profile": profile,  # D455: the RGB sensor
            "depth_module.color_profile": profile,  # D405: colour comes from the depth module
            "rgb_camera.color_format": "RGB8",  # our Image encoding is rgb8
            "publish_tf": True,
        }
        out.append(
            NodeLaunch(
                "realsense2_camera",
                "realsense2_camera_node",
                name,
                namespace=REALSENSE_NAMESPACE,
                parameters=[params],
            )
        )
    return out


def robot_state_publishers(arms: list[str], urdf_text: str) -> list[NodeLaunch]:
    """One robot_state_publisher per arm in the namespace `<arm>_arm`, reading that arm's
    joint states (remapped to the contract's topic) on the URDF prefixed `<arm>_`. tf2 publishes
    on the absolute /tf and /tf_static, so both arms share one tree."""
    out = []
    for arm in arms:
        prefix = f"{arm}_"
        description = prefix_urdf(urdf_text, prefix)
        if f'name="{base_frame(arm)}"' not in description:
            raise ValueError(f"urdf: has no link base_link, so no frame {base_frame(arm)!r}")
        out.append(
            NodeLaunch(
                "robot_state_publisher",
                "robot_state_publisher",
                "robot_state_publisher",
                namespace=f"{arm}_arm",
                parameters=[{"robot_description": description}],
                remappings=[("joint_states", joint_states_topic(arm))],
            )
        )
    return out


def plan(values: Mapping[str, str], params_dir: str | Path | None = None) -> list[NodeLaunch]:
    """Every node the launch file starts for these launch-argument values."""
    config = graph_config(values)
    camera_driver = _check_choice(
        "camera_driver", values.get("camera_driver", "habc"), CAMERA_DRIVERS
    )
    rsp = _check_choice(
        "robot_state_publisher", values.get("robot_state_publisher", "false"), BOOLS
    )
    cameras = config["nodes"].get("cameras")
    use_realsense = (
        camera_driver == "realsense2_camera"
        and cameras is not None
        and cameras.get("enabled", True)
    )
    if use_realsense:
        config["nodes"]["cameras"]["enabled"] = False  # realsense-ros publishes the images
    directory = Path(params_dir or tempfile.mkdtemp(prefix="habc_rollout_"))
    params_file = write_params_file(config, directory / "rollout_params.yaml")
    out = [
        NodeLaunch(spec.package, spec.executable, spec.name, parameters=[str(params_file)])
        for spec in node_specs(config)
    ]
    if use_realsense:
        specs = {spec.name: spec.parameters for spec in node_specs(_all_enabled(config))}
        out += realsense_nodes(specs["cameras"])
    if rsp == "true":
        urdf = Path(values.get("urdf") or default_urdf()).expanduser()
        if not urdf.is_file():
            raise ValueError(f"urdf: {str(urdf)!r}: no such file")
        arms = list(config.get("common", {}).get("arms") or [])
        driver = (config["nodes"].get("arm_driver") or {}).get("parameters") or {}
        arms = list(driver.get("arms", arms))
        out += robot_state_publishers(arms, urdf.read_text(encoding="utf-8"))
    return out


def _all_enabled(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with every node enabled (to read a disabled node's merged parameters)."""
    nodes = {name: {**entry, "enabled": True} for name, entry in config["nodes"].items()}
    return {**config, "nodes": nodes}
