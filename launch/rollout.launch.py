"""Rollout graph for a robot PC: `ros2 launch habc_control rollout.launch.py [config:=robot ...]`.

The node list and parameters come from a graph profile (`config:=sim`, the default
config/rollout.yaml; `config:=robot`, config/rollout_robot.yaml; or a YAML path) through
habc_control.graph, the same function the in-process runner (`habc-rollout`) uses, so both start
the same graph.
"""

from __future__ import annotations

from habc_control.graph import (
    OVERRIDES,
    PROFILES,
    apply_overrides,
    load_graph_config,
    node_specs,
)

try:  # launch / launch_ros exist only where ROS is installed from apt (robot PC)
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription
except ImportError:  # pragma: no cover - exercised on machines without launch
    LaunchDescription = None


def launch_nodes(config_path: str, overrides: dict[str, str]) -> list:
    """launch_ros Node actions for the configured graph (empty overrides keep the config)."""
    config = apply_overrides(
        load_graph_config(config_path or None), {k: v for k, v in overrides.items() if v != ""}
    )
    return [
        Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            parameters=[spec.parameters],
            output="screen",
            emulate_tty=True,
        )
        for spec in node_specs(config)
    ]


def _setup(context, *args, **kwargs) -> list:
    config = LaunchConfiguration("config").perform(context)
    overrides = {k: LaunchConfiguration(k).perform(context) for k in OVERRIDES}
    return launch_nodes(config, overrides)


def generate_launch_description():
    if LaunchDescription is None:
        raise RuntimeError(
            "launch/launch_ros are not installed here; run the same graph with `habc-rollout`"
        )
    args = [
        DeclareLaunchArgument(
            "config",
            default_value="",
            description=f"graph profile ({', '.join(PROFILES)}) or YAML path (default: sim)",
        )
    ]
    args += [
        DeclareLaunchArgument(key, default_value="", description=f"{text} (default: config)")
        for key, (_, _, text) in OVERRIDES.items()
    ]
    return LaunchDescription([*args, OpaqueFunction(function=_setup)])
