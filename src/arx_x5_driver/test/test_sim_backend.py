"""The simulated rig behind the arm node's backend protocol."""

import numpy as np

from arx_x5_driver.backend import RigBackend
from arx_x5_driver.safety import MODE_EE, MODE_JOINT, Command
from arx_x5_driver.sim.backend import SimRigBackend


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
