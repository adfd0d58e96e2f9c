"""A node started with a parameter it cannot work with stops with one line naming it."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros


def run_node_main(module: str, *params: str) -> subprocess.CompletedProcess:
    """The node's console-script body in a fresh process, as `ros2 run` / launch start it."""
    args = [a for p in params for a in ("-p", p)]
    return subprocess.run(
        [sys.executable, "-c", f"from {module} import main; main()", "--ros-args", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pedal_input_without_a_device_names_pedal_device_and_how_to_find_it():
    res = run_node_main("habc_control.teleop_node", "input:=pedal")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("teleop: pedal_device: ''")
    assert "ls /dev/input/by-id/" in lines[0]


def test_pedal_device_check_refuses_construction(ros):
    from rclpy.parameter import Parameter

    from habc_control.teleop_node import TeleopNode

    with pytest.raises(ValueError, match="pedal_device"):
        TeleopNode(context=ros, parameter_overrides=[Parameter("input", value="pedal")])
