"""The camera node as a lifecycle node (pyrealsense2 faked): devices open at configure, frames
published only while active, /diagnostics per camera, jpeg_quality the one dynamic parameter."""

import time

import pytest
from test_camera import FakeRS

pytestmark = pytest.mark.ros


def _cameras(ros, rs, **overrides):
    from rclpy.parameter import Parameter

    from habc_control.camera_node import CameraNode

    params = {
        "names": ["top", "left_wrist"],
        "serials": ["111", "222"],
        "width": 32,
        "height": 24,
        "reconnect_s": 0.1,
    }
    params.update(overrides)
    return CameraNode(
        rs=rs, context=ros, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )


def test_inactive_publishes_nothing_active_publishes_and_diagnostics_per_camera(
    ros, spin, wait_until
):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from arx_x5_driver.node_main import lifecycle_state

    ok = TransitionCallbackReturn.SUCCESS
    rs = FakeRS({"111"})  # the left wrist camera is unplugged
    cam = _cameras(ros, rs)
    assert rs.enabled == []  # unconfigured: no device touched
    probe = Node("probe", context=ros)
    raw, diags = [], []
    probe.create_subscription(Image, "/camera/top/color/image_raw", raw.append, 5)
    probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    spin(ros, [cam, probe])

    assert cam.trigger_configure() == ok and lifecycle_state(cam) == "inactive"
    assert rs.enabled and rs.enabled[0][0] == "111"  # configure opened the device
    time.sleep(0.5)
    assert raw == [] and cam.frames["top"] == 0  # read, never published

    assert cam.trigger_activate() == ok
    assert wait_until(lambda: len(raw) > 2, 30.0)
    assert (raw[-1].height, raw[-1].width) == (24, 32)

    def latest(name):
        for msg in reversed(diags):
            for s in msg.status:
                if s.name == name:
                    return s, {kv.key: kv.value for kv in s.values}
        return None, {}

    def reported():
        top, values = latest("cameras: top")
        return top is not None and values["lifecycle_state"] == "active"

    assert wait_until(reported, 30.0)
    top, values = latest("cameras: top")
    assert top.level == DiagnosticStatus.OK and top.hardware_id == "realsense:111"
    assert int(values["frames_published"]) > 0 and values["lost"] == "false"
    wrist, wvalues = latest("cameras: left_wrist")
    assert wrist.level == DiagnosticStatus.ERROR and wvalues["lost"] == "true"
    assert "222" in wvalues["last_error"] and wvalues["frames_published"] == "0"

    # deactivate: nothing more published, the device kept
    assert cam.trigger_deactivate() == ok
    time.sleep(0.2)
    n = cam.frames["top"]
    time.sleep(0.4)
    assert cam.frames["top"] == n
    # the wrist camera plugged in while inactive: reconnected, counted
    rs.present.add("222")
    assert wait_until(lambda: cam._sups["left_wrist"].reconnects == 1, 30.0)


def test_jpeg_quality_may_change_at_run_time_the_rest_is_read_only(ros):
    from rclpy.parameter import Parameter

    cam = _cameras(ros, FakeRS({"111", "222"}))
    try:
        ok = cam.set_parameters([Parameter("jpeg_quality", value=50)])[0]
        assert ok.successful and cam.quality == 50
        out = cam.set_parameters([Parameter("jpeg_quality", value=500)])[0]
        assert not out.successful and cam.quality == 50
        refused = cam.set_parameters([Parameter("fps", value=15)])[0]
        assert not refused.successful and "read-only" in refused.reason
    finally:
        cam.destroy_node()


def test_an_out_of_range_camera_parameter_is_refused_naming_its_range(ros):
    with pytest.raises(ValueError, match=r"^fps: out of range \[1, 90\]"):
        _cameras(ros, FakeRS(set()), fps=500)
