"""The control loop imports nothing: a module imported on first use inside a tick costs that tick
its whole import (scipy's rotations: 0.3-0.7 s, 10-20 periods at 30 Hz). Run in a fresh
interpreter: this test process has imported everything already, and an audit hook stays."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.ros

_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, time

    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from arx_x5_driver.arm_node import ArmNode
    from arx_x5_driver.node_main import bring_up

    context = Context()
    rclpy.init(context=context, domain_id=100 + (os.getpid() + 61) % 100)
    node = ArmNode(context=context, parameter_overrides=[Parameter("backend", value="kinematic")])
    in_ticks = []

    def on_event(event, args):
        # Imports on the loop thread once it may tick (configure sets _go after make_backend).
        if event == "import" and threading.current_thread().name == "arm_control":
            go = getattr(node, "_go", None)
            if go is not None and go.is_set():
                in_ticks.append(args[0])

    sys.addaudithook(on_event)
    bring_up(node)
    deadline = time.monotonic() + 10.0
    while node.ticks < 10 and time.monotonic() < deadline:  # active ticks: hold, publish
        time.sleep(0.05)
    ticks = node.ticks
    node.trigger_deactivate()
    node.trigger_shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
    print("TICKS", ticks)
    print("IMPORTS", sorted(set(in_ticks)))
    """
)


def test_the_control_loop_imports_nothing_after_configure():
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert int(lines["TICKS"]) >= 10
    assert lines["IMPORTS"] == "[]", f"imported inside control ticks: {lines['IMPORTS']}"
