"""The simulated rig behind the arm node's backend protocol."""

import numpy as np

from arx_x5_driver.backend import RigBackend
from arx_x5_driver.safety import Command
from arx_x5_driver.sim_backend import SimRigBackend
from habc_core.contract import MODE_EE, MODE_JOINT
from habc_sim.config import SceneConfig, SimConfig


def test_sim_backend_follows_ee_and_joint_commands_and_holds_on_stop():
    rig = SimRigBackend(obs_mode="state")
    assert isinstance(rig, RigBackend)
    m = rig.read("left")
    assert m.joints.shape == (6,) and m.ee.shape == (9,) and 0.0 <= m.gripper <= 0.09
    target = m.ee.copy()
    target[2] -= 0.05
    for _ in range(20):
        rig.send("left", Command(MODE_EE, target, 0.02))
        rig.step()
    after = rig.read("left")
    np.testing.assert_allclose(after.ee[:3], target[:3], atol=0.004)
    assert after.gripper < 0.03
    q = rig.read("right").joints + np.array([0.2, 0, 0, 0, 0, 0])
    for _ in range(20):
        rig.send("right", Command(MODE_JOINT, q, 0.088))
        rig.step()
    assert abs(rig.read("right").joints[0] - q[0]) < 0.01
    rig.safe_stop()
    held = rig.read("right").joints
    rig.send("right", Command(MODE_JOINT, q + 0.3, 0.088))  # ignored once stopped
    for _ in range(10):
        rig.step()
    np.testing.assert_allclose(rig.read("right").joints, held, atol=0.01)
    rig.close()


def test_sim_backend_renders_only_when_asked_and_shows_the_current_state():
    """The arm node steps every tick and renders only to publish: one render per frame."""
    rig = SimRigBackend(config=SimConfig(scene=SceneConfig(image_size=32)), obs_mode="pixels")
    renders = []
    render = rig.env.cameras.render
    rig.env.cameras.render = lambda data: renders.append(1) or render(data)
    for _ in range(3):
        rig.step()
    assert renders == []  # stepping renders nothing
    before = rig.render()
    assert len(renders) == 1
    assert {k: v.shape for k, v in before.items()} == {
        cam: (32, 32, 3) for cam in ("top", "left_wrist", "right_wrist")
    }
    q = rig.read("left").joints + np.array([0.4, 0, 0, 0, 0, 0])
    for _ in range(20):
        rig.send("left", Command(MODE_JOINT, q, 0.088))
        rig.step()
    after = rig.render()
    assert len(renders) == 2
    moved = np.abs(after["left_wrist"].astype(int) - before["left_wrist"].astype(int)).mean()
    assert moved > 1.0  # the frame is rendered from the state after the steps
    rig.close()
