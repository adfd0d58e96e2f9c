"""The policy node with its model on a policy server: chunks flow through the arm clock as with
an in-process model, and when the server goes the node stops commanding (the mux then holds)."""

import threading
import time

import pytest
from test_ros_graph_policy import make_flow_policy

pytestmark = pytest.mark.ros


def test_policy_node_runs_a_served_policy_and_stops_when_the_server_goes(ros, spin, wait_until):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from arx_x5_driver.arm_node import ArmNode
    from arx_x5_driver.node_main import bring_up
    from arx_x5_driver.qos import AUTHORITY_QOS
    from habc_control.policy_node import PolicyNode
    from habc_core.policy_client import PolicyClient
    from habc_core.policy_server import PolicyServer
    from habc_interfaces.msg import ActionChunk, ArmCommand, ControlAuthority

    policy = make_flow_policy()
    server = PolicyServer(policy, port=0, metadata={"horizon": 50})
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    arm = bring_up(
        ArmNode(context=ros, parameter_overrides=[Parameter("backend", value="kinematic")])
    )
    node = PolicyNode(
        context=ros,
        parameter_overrides=[
            Parameter("checkpoint", value=server.url),
            Parameter("task", value="put the marker in the pouch"),
        ],
    )
    assert isinstance(node.policy, PolicyClient) and node.model_index == 7
    probe = Node("probe", context=ros)
    chunks, cmds = [], []
    probe.create_subscription(ActionChunk, "/policy/action_chunk", chunks.append, 10)
    probe.create_subscription(ArmCommand, "/policy/right/command", cmds.append, 10)
    auth = probe.create_publisher(ControlAuthority, "/control_authority", AUTHORITY_QOS)
    spin(ros, [arm, node, probe], threads=3)
    auth.publish(ControlAuthority(arm_names=["left", "right"], authority=[0, 0]))
    assert wait_until(lambda: len(chunks) >= 2 and len(cmds) >= 30, timeout=20.0)
    c = chunks[0]
    assert (c.horizon, c.action_dim, c.model_index) == (50, 20, 7)
    assert server.requests >= 2
    server.shutdown()
    serving.join(timeout=5.0)
    # What was computed runs out, then nothing: no chunk, no row. While a request is in flight
    # the chunk runs on past row 25 up to its last (the chunk executor's run-on, slowing down
    # near it), so a chunk the server sent just before it closed can play for its whole 50 rows
    # at 30 Hz (1.7 s) and a few ticks of slow-down; 2 s was once too short (57 rows, not 51).
    time.sleep(50 / 30 + 1.0)
    n_chunks, n_cmds = len(chunks), len(cmds)
    time.sleep(1.5)
    assert (len(chunks), len(cmds)) == (n_chunks, n_cmds)
