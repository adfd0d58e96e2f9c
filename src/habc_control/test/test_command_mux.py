import numpy as np
import pytest

from habc_control.authority import Authority
from habc_control.command_mux import ActionLayout, ArmTarget, CommandMux, MuxConfig

P, H, X = Authority.POLICY, Authority.HUMAN, Authority.HOLD


def jt(v: float, g: float = 0.04) -> ArmTarget:
    return ArmTarget(np.full(6, v), g)


def mux(blend_steps: int = 4) -> CommandMux:
    return CommandMux(MuxConfig(arms=("left",), action_space="joint", blend_steps=blend_steps))


def test_layout_split_join_roundtrip():
    lay = ActionLayout(("left", "right"), "ee")
    assert lay.dim == 20 and len(lay.dim_names()) == 20
    a = np.arange(20, dtype=np.float32)
    parts = lay.split(a)
    assert parts["right"].gripper == 19.0 and parts["left"].targets.shape == (9,)
    np.testing.assert_array_equal(lay.join(parts), a)
    with pytest.raises(ValueError, match="action_space"):
        ActionLayout(("left",), "cartesian")


def test_takeover_blends_from_last_command_without_jump():
    m = mux(blend_steps=4)
    out = m.tick({"left": P}, {"left": jt(0.0)}, {}, {}, model_index=3)
    assert out["left"].authority == P and out["left"].model_index == 3
    vals = []
    for _ in range(6):
        o = m.tick({"left": H}, {"left": jt(0.0)}, {"left": jt(1.0)}, {})["left"]
        assert o.authority == H and o.model_index == -1
        vals.append(o.target.targets[0])
    np.testing.assert_allclose(vals, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert not m.blending("left")


def test_blend_starts_from_measured_pose_when_nothing_was_sent():
    m = mux(blend_steps=2)
    o = m.tick({"left": H}, {}, {"left": jt(1.0)}, {"left": jt(0.2)})["left"]
    assert o.target.targets[0] == pytest.approx(0.6)


def test_hold_freezes_pose_and_policy_gap_repeats_last():
    m = mux()
    m.tick({"left": P}, {"left": jt(0.3)}, {}, {})
    o = m.tick({"left": P}, {"left": None}, {}, {})["left"]
    assert o.held and o.target.targets[0] == 0.3 and o.model_index == -1
    o = m.tick({"left": X}, {"left": jt(0.9)}, {"left": jt(0.8)}, {})["left"]
    assert o.authority == X and o.target.targets[0] == 0.3


def test_nothing_known_gives_no_command():
    assert mux().tick({"left": P}, {}, {}, {})["left"] is None


def test_stalled_policy_is_held_and_never_labelled_policy():
    m = CommandMux(MuxConfig(arms=("left",), action_space="joint", policy_timeout_ticks=3))
    m.tick({"left": P}, {"left": jt(0.3)}, {}, {}, model_index=7)
    labels = [m.tick({"left": P}, {}, {}, {})["left"] for _ in range(5)]
    # Two ticks of waiting for a chunk are the policy's own hold; from the third on it stalled.
    assert [o.authority for o in labels] == [P, P, X, X, X]
    assert all(o.model_index == -1 and o.held for o in labels)
    assert all(o.target.targets[0] == 0.3 for o in labels)
    assert m.policy_stalled("left")
    fresh = m.tick({"left": P}, {"left": jt(0.4)}, {}, {}, model_index=8)["left"]
    assert fresh.authority == P and fresh.model_index == 8 and not m.policy_stalled("left")


def test_reset_forgets_the_last_output():
    m = mux()
    m.tick({"left": P}, {"left": jt(0.3)}, {}, {})
    m.reset()
    o = m.tick({"left": P}, {}, {}, {"left": jt(-0.2)})["left"]
    assert o.target.targets[0] == -0.2
    with pytest.raises(ValueError, match="policy_timeout_ticks"):
        MuxConfig(policy_timeout_ticks=0)
