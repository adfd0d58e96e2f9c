"""The shipped graph profiles and the nodes' declared defaults never loosen a safety bound.

The cores' defaults are pinned to the documented bounds (test_safety_bounds.py,
test_authority_bounds.py); here every place a bound can be set without touching a core is held
to them: config/rollout.yaml and its robot profile (params files: habc_control.graph reads them
as rcl does, test_graph.py checks that against rclpy), the collector's reading of them, and the
defaults each node declares.
"""

import pytest

from arx_x5_driver.safety import UPPER_BOUNDS, SafetyConfig
from habc_control.authority import AUTHORITY_TIMEOUT_S, AuthorityConfig
from habc_control.collect import CollectConfig
from habc_control.command_mux import POLICY_TIMEOUT_S, MuxConfig, policy_timeout_ticks
from habc_control.freshness import IMAGE_TIMEOUT_S
from habc_control.graph import load_graph_config, node_specs

PROFILES = [None, "robot"]
SHIPPED = SafetyConfig()


def params(profile):
    return {spec.name: spec.parameters for spec in node_specs(load_graph_config(profile))}


@pytest.mark.parametrize("profile", PROFILES, ids=["sim", "robot"])
def test_the_arm_driver_profile_is_not_looser_than_the_shipped_bounds(profile):
    driver = params(profile)["arm_driver"]
    safety = SafetyConfig.from_parameters(
        {k: v for k, v in driver.items() if k in SafetyConfig.parameters()}
    )
    for name in UPPER_BOUNDS:
        assert getattr(safety, name) <= getattr(SHIPPED, name), name
    assert safety.joint_margin >= SHIPPED.joint_margin
    for axis in range(3):
        assert safety.workspace_min[axis] >= SHIPPED.workspace_min[axis]
        assert safety.workspace_max[axis] <= SHIPPED.workspace_max[axis]
    # the DDS-free collector runs the same bounds as the arm driver of that profile
    assert CollectConfig.from_graph(load_graph_config(profile)).safety == safety


@pytest.mark.parametrize("profile", PROFILES, ids=["sim", "robot"])
def test_the_operator_side_profile_is_not_looser_than_the_shipped_bounds(profile):
    p = params(profile)
    mux, teleop, policy = p["command_mux"], p["teleop"], p["policy"]
    assert float(mux.get("authority_timeout_s", AUTHORITY_TIMEOUT_S)) <= AUTHORITY_TIMEOUT_S
    assert float(mux.get("policy_timeout_s", POLICY_TIMEOUT_S)) <= POLICY_TIMEOUT_S
    assert int(mux.get("blend_steps", MuxConfig.blend_steps)) == MuxConfig.blend_steps
    assert float(teleop.get("heartbeat_s", 0.5)) <= AuthorityConfig.heartbeat_s
    assert float(teleop.get("debounce_s", 0.03)) <= AuthorityConfig.debounce_s
    assert float(policy.get("image_timeout_s", IMAGE_TIMEOUT_S)) <= IMAGE_TIMEOUT_S
    hz = float(mux.get("control_hz", 30.0))
    collect = CollectConfig.from_graph(load_graph_config(profile))
    assert collect.policy_timeout_ticks == policy_timeout_ticks(
        float(mux.get("policy_timeout_s", POLICY_TIMEOUT_S)), hz
    )
    assert collect.blend_steps == int(mux.get("blend_steps", MuxConfig.blend_steps))


def test_the_collectors_own_defaults_are_the_mux_defaults():
    c = CollectConfig()
    assert (c.blend_steps, c.policy_timeout_ticks) == (
        MuxConfig.blend_steps,
        MuxConfig.policy_timeout_ticks,
    )
    assert c.safety == SHIPPED


@pytest.mark.ros
def test_every_node_declares_the_cores_bounds_as_its_defaults(ros):
    from rclpy.parameter import Parameter

    from arx_x5_driver.arm_node import ArmNode
    from habc_control.mux_node import MuxNode
    from habc_control.policy_node import PolicyNode
    from habc_control.teleop_node import TeleopNode

    arm = ArmNode(context=ros, parameter_overrides=[Parameter("backend", value="kinematic")])
    mux = MuxNode(context=ros)
    teleop = TeleopNode(
        context=ros, parameter_overrides=[Parameter("input", value="sim_operator")]
    )
    policy = PolicyNode(context=ros)
    try:
        # the config the driver core is built with on configure (a lifecycle node)
        assert arm.safety_config == SHIPPED
        for name, (default, _text) in SafetyConfig.parameters().items():
            assert arm.get_parameter(name).value == default, name
        assert mux.watch.timeout_s == AUTHORITY_TIMEOUT_S
        assert mux.mux.config.blend_steps == MuxConfig.blend_steps
        assert mux.mux.config.policy_timeout_ticks == MuxConfig.policy_timeout_ticks
        assert teleop.arbiter.config.heartbeat_s == AuthorityConfig.heartbeat_s
        assert teleop.get_parameter("debounce_s").value == AuthorityConfig.debounce_s
        assert policy.get_parameter("image_timeout_s").value == IMAGE_TIMEOUT_S
        assert policy._images.timeout_s == IMAGE_TIMEOUT_S
    finally:
        arm.safe_stop()
        for node in (arm, mux, teleop, policy):
            if hasattr(node, "shutdown"):
                node.shutdown()
            node.destroy_node()
