"""A node started with a parameter it cannot work with stops with one line naming it."""

import subprocess
import sys
import types

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


def test_cameras_without_serials_name_serials_and_stop_without_a_traceback():
    res = run_node_main("habc_control.camera_node")  # the shipped default: serials ["", "", ""]
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("cameras: serials: ['', '', ''] has an empty entry")
    assert "connected: " in lines[0]


class TwoD405s:
    """pyrealsense2's device listing with a D455 and two D405s plugged in."""

    camera_info = types.SimpleNamespace(serial_number="serial", name="name")
    devices = [
        ("111", "Intel RealSense D455"),
        ("222", "Intel RealSense D405"),
        ("333", "Intel RealSense D405"),
    ]

    def context(self):
        info = [dict(serial=s, name=n) for s, n in self.devices]
        return types.SimpleNamespace(
            query_devices=lambda: [types.SimpleNamespace(get_info=d.__getitem__) for d in info]
        )


def test_cameras_do_not_guess_the_wrists_and_list_what_is_connected(ros):
    from rclpy.parameter import Parameter

    from habc_control.camera_node import CameraNode

    with pytest.raises(ValueError, match=r"^serials: \['111', '', ''\]") as err:
        CameraNode(
            rs=TwoD405s(),
            context=ros,
            parameter_overrides=[Parameter("serials", value=["111", "", ""])],
        )
    assert err.value.args[0].endswith(
        "connected: 111 (Intel RealSense D455), 222 (Intel RealSense D405), "
        "333 (Intel RealSense D405)"
    )
