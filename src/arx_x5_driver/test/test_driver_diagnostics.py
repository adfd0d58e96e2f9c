"""The /diagnostics statuses, decided without ROS: levels, names and the key/values."""

import math

from arx_x5_driver.diagnostics import (
    ERROR,
    OK,
    WARN,
    ArmHealth,
    CameraHealth,
    RateMeter,
    arm_status,
    camera_status,
)
from arx_x5_driver.driver_core import ArmCounters

NO_EVENTS = ArmCounters()


def arm(state="active", counters=NO_EVENTS, **kw):
    figures = dict(
        held=False,
        tick_rate_hz=29.8,
        control_hz=30.0,
        overruns=3,
        window_overruns=0,
        tick_error="",
    )
    figures.update(kw)
    return ArmHealth("left", "arx5:can0", state, counters=counters, **figures)


def test_arm_levels_from_ok_to_error():
    ok = arm_status("arm_driver", arm())
    assert (ok.level, ok.name, ok.hardware_id) == (OK, "arm_driver: left", "arx5:can0")
    values = dict(ok.values)
    assert values["lifecycle_state"] == "active" and values["tick_rate_hz"] == "29.8"
    assert values["overruns"] == "3" and values["watchdog_trips"] == "0"
    tripped = arm_status("d", arm(counters=ArmCounters(2, 1, True)))
    assert tripped.level == WARN and "watchdog" in tripped.message
    assert dict(tripped.values)["watchdog_trips"] == "1"
    assert dict(tripped.values)["clamp_count"] == "2"
    assert arm_status("d", arm(window_overruns=2)).level == WARN
    assert arm_status("d", arm("unconfigured")).level == WARN
    assert arm_status("d", arm("inactive")).level == OK
    fault = arm_status("d", arm(counters=ArmCounters(0, 1, True, "left: not following")))
    assert fault.level == ERROR and fault.message == "left: not following"
    assert arm_status("d", arm(tick_error="RuntimeError('CAN')")).level == ERROR


def test_camera_levels():
    def cam(**kw):
        h = dict(
            camera="top",
            serial="111",
            lifecycle_state="active",
            fps=30,
            frame_rate_hz=29.0,
            frames=100,
            reconnects=0,
            lost=False,
            last_error="",
        )
        h.update(kw)
        return camera_status("cameras", CameraHealth(**h))

    ok = cam()
    assert (ok.level, ok.name, ok.hardware_id) == (OK, "cameras: top", "realsense:111")
    assert dict(ok.values)["frame_rate_hz"] == "29.0"
    assert cam(frame_rate_hz=10.0).level == WARN
    lost = cam(lost=True, last_error="camera 'top' lost", reconnects=2)
    assert lost.level == ERROR and lost.message == "camera 'top' lost"
    assert dict(lost.values)["reconnects"] == "2"


def test_rate_meter_counts_per_second_between_samples():
    r = RateMeter()
    assert math.isnan(r.rate(0, 10.0))
    assert r.rate(30, 11.0) == 30.0
    assert r.rate(45, 12.0) == 15.0
