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
    spin(ros, [arm, node, probe])
    auth.publish(ControlAuthority(arm_names=["left", "right"], authority=[0, 0]))
    assert wait_until(lambda: len(chunks) >= 2 and len(cmds) >= 30, timeout=20.0)
    c = chunks[0]
    assert (c.horizon, c.action_dim, c.model_index) == (50, 20, 7)
    assert server.requests >= 2
    server.shutdown()
    serving.join(timeout=5.0)
    rows_then, chunks_then = len(cmds), len(chunks)
    # What was computed runs out, then nothing: no chunk, no row. While a request is in flight
    # the chunk runs on past row 25 up to its last (the chunk executor's run-on, slowing down
    # near it), so the chunk playing when the server closed, and one it sent just before, can
    # play out: at most two chunks of 50 rows. Waited for by what arrives, not a fixed time
    # (2.67 s was once too short on a loaded machine: 4 more rows came after it).
    rows = _Growth(cmds)
    assert wait_until(lambda: rows.quiet_for(1.0), timeout=15.0), "rows never stopped"
    assert len(cmds) - rows_then <= 2 * 50 and len(chunks) - chunks_then <= 1
    n_chunks, n_cmds = len(chunks), len(cmds)
    time.sleep(1.5)
    assert (len(chunks), len(cmds)) == (n_chunks, n_cmds)


class _Growth:
    """Whether a list has stopped growing, polled by wait_until."""

    def __init__(self, items: list) -> None:
        self.items, self.count, self.since = items, len(items), time.monotonic()

    def quiet_for(self, seconds: float) -> bool:
        now = time.monotonic()
        if len(self.items) != self.count:
            self.count, self.since = len(self.items), now
        return now - self.since >= seconds
