"""Policy node end to end with habc_trainer's FlowPolicy behind the Policy interface."""

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def make_flow_policy():
    """A small untrained FlowPolicy (state mode, 2 arms x 10 EE dims) with synthetic stats."""
    from habc_trainer.models.config import ModelConfig
    from habc_trainer.models.example import example_stats, make_example_batch
    from habc_trainer.models.policy import FlowPolicy

    cfg = ModelConfig(d_model=32, n_layers=1, num_inference_steps=2).with_dims(
        proprio_dim=20, action_dim=20, cameras=()
    )
    stats = example_stats(make_example_batch(cfg, 8, np.random.default_rng(0)), cfg)
    policy = FlowPolicy(cfg, stats)
    policy.model_index = 7
    return policy


def test_policy_node_runs_flow_policy_chunks_through_the_arm_clock(ros, spin):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from arx_x5_driver.arm_node import ArmNode
    from arx_x5_driver.node_main import bring_up
    from arx_x5_driver.qos import AUTHORITY_QOS
    from habc_control.policy_node import PolicyNode
    from habc_interfaces.msg import ActionChunk, ArmCommand, ControlAuthority

    context = ros
    arm = bring_up(
        ArmNode(context=context, parameter_overrides=[Parameter("backend", value="kinematic")])
    )
    policy = PolicyNode(
        context=context,
        parameter_overrides=[
            Parameter("checkpoint", value=f"{__name__}:make_flow_policy"),
            Parameter("task", value="put the marker in the pouch"),
        ],
    )
    probe = Node("probe", context=context)
    chunks, cmds = [], []
    probe.create_subscription(ActionChunk, "/policy/action_chunk", chunks.append, 10)
    probe.create_subscription(ArmCommand, "/policy/right/command", cmds.append, 10)
    auth = probe.create_publisher(ControlAuthority, "/control_authority", AUTHORITY_QOS)
    spinning = spin(context, [arm, policy, probe])
    try:
        auth.publish(ControlAuthority(arm_names=["left", "right"], authority=[0, 0]))
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline and (len(chunks) < 2 or len(cmds) < 30):
            time.sleep(0.05)
    finally:
        spinning.stop()
    assert len(chunks) >= 2 and len(cmds) >= 30, (len(chunks), len(cmds))
    c = chunks[0]
    assert (c.horizon, c.action_dim, c.execute_steps, c.model_index) == (50, 20, 25, 7)
    assert len(c.actions) == 50 * 20 and np.all(np.isfinite(c.actions))
    assert len(c.dim_names) == 20 and c.dim_names[10] == "right.x"
    # the first right-arm command is row 0 of the first chunk, right arm's dims
    first = np.asarray(c.actions, dtype=np.float32).reshape(50, 20)[0, 10:19]
    np.testing.assert_allclose(cmds[0].targets, first, rtol=1e-5, atol=1e-5)
    assert all(m.authority == 0 and m.model_index == 7 for m in cmds)
