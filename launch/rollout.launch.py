"""Rollout graph for a robot PC: `ros2 launch habc_control rollout.launch.py [config:=robot ...]`.

A thin shell: habc_control.launch_plan decides every node (the profile's graph, its parameters
written as one standard params file that each node gets with --params-file, the camera driver,
robot_state_publisher per arm) and is tested without ROS; this file only declares the arguments
and turns the plan into launch_ros Nodes. `ros2 launch habc_control rollout.launch.py -s` lists
the arguments with their descriptions and choices.
"""

from __future__ import annotations

from habc_control.launch_plan import launch_arguments, plan

try:  # launch / launch_ros exist only where ROS is installed from apt (robot PC)
    from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription
except ImportError:  # pragma: no cover - exercised on machines without launch
    LaunchDescription = None


def _setup(context, *args, **kwargs) -> list:
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in launch_arguments()}
    nodes = plan(values)
    actions = [
        Node(
            package=n.package,
            executable=n.executable,
            name=n.name,
            namespace=n.namespace,
            parameters=n.parameters,
            remappings=n.remappings,
            output="screen",
            emulate_tty=True,
        )
        for n in nodes
    ]
    files = sorted({p for n in nodes for p in n.parameters if isinstance(p, str)})
    return [LogInfo(msg=f"rollout parameters: {', '.join(files)}"), *actions]


def generate_launch_description():
    if LaunchDescription is None:
        raise RuntimeError(
            "launch/launch_ros are not installed here; run the same graph with `habc-rollout`"
        )
    arguments = [
        DeclareLaunchArgument(
            a.name,
            default_value=a.default,
            description=a.description,
            choices=list(a.choices) if a.choices else None,
        )
        for a in launch_arguments()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_setup)])
