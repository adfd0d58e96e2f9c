"""Success and failure detection from simulator state, and config validation."""

import mujoco
import numpy as np
import pytest

from habc_sim.config import SceneConfig, SimConfig, TaskConfig, sim_config_from_dict
from habc_sim.env import PouchEnv


@pytest.fixture(scope="module")
def env() -> PouchEnv:
    return PouchEnv(SimConfig())


def _place_marker(env: PouchEnv, world_xyz, axis_yaw: float, lid: float) -> None:
    rig = env.rig
    d = rig.data
    adr = rig.model.joint("marker").qposadr[0]
    qz, qy, q = np.empty(4), np.empty(4), np.empty(4)
    mujoco.mju_axisAngle2Quat(qz, [0, 0, 1], axis_yaw)
    mujoco.mju_axisAngle2Quat(qy, [0, 1, 0], np.pi / 2)
    mujoco.mju_mulQuat(q, qz, qy)
    d.qpos[adr : adr + 3] = world_xyz
    d.qpos[adr + 3 : adr + 7] = q
    d.qvel[:] = 0
    d.qpos[rig.model.joint("lid").qposadr[0]] = lid
    mujoco.mj_forward(rig.model, d)


def _pouch_point(env: PouchEnv, local_x: float, z: float) -> np.ndarray:
    ppos, prot = env.rig.pouch_pose()
    p = ppos + prot[:, 0] * local_x
    p[2] = z
    return p


def test_marker_in_closed_pouch_is_success(env: PouchEnv):
    env.reset(3)
    ppos, prot = env.rig.pouch_pose()
    yaw = float(np.arctan2(prot[1, 0], prot[0, 0]))
    _place_marker(env, _pouch_point(env, 0.0, 0.005 + 0.009), yaw, lid=0.0)
    s = env.task.evaluate(env.rig)
    assert s.marker_in_pouch and s.lid_closed and s.success and not s.off_table


def test_marker_in_open_pouch_is_not_yet_success(env: PouchEnv):
    env.reset(3)
    ppos, prot = env.rig.pouch_pose()
    yaw = float(np.arctan2(prot[1, 0], prot[0, 0]))
    _place_marker(env, _pouch_point(env, -0.01, 0.014), yaw, lid=0.14)
    s = env.task.evaluate(env.rig)
    assert s.marker_in_pouch and s.lid_open and not s.success


def test_marker_across_the_pouch_or_on_the_table_is_not_in_it(env: PouchEnv):
    env.reset(3)
    ppos, prot = env.rig.pouch_pose()
    yaw = float(np.arctan2(prot[1, 0], prot[0, 0]))
    _place_marker(env, _pouch_point(env, 0.0, 0.03), yaw + np.pi / 2, lid=0.0)
    assert not env.task.evaluate(env.rig).marker_in_pouch  # sticks out over the side walls
    _place_marker(env, np.array([0.3, -0.25, 0.009]), 1.5, lid=0.0)
    s = env.task.evaluate(env.rig)
    assert not s.marker_in_pouch and not s.success and s.marker_on_table


def test_marker_below_the_table_is_unrecoverable_and_ends_the_episode(env: PouchEnv):
    env.reset(4)
    _place_marker(env, np.array([0.6, -0.3, -0.2]), 1.5, lid=0.0)
    _, reward, terminated, truncated, info = env.step(None)
    assert info["state"].off_table and terminated and not truncated and reward == 0.0


def test_step_limit_truncates(env: PouchEnv):
    cfg = SimConfig(task=TaskConfig(t_max=12))
    small = PouchEnv(cfg)
    small.reset(0)
    flags = [small.step(None)[3] for _ in range(12)]
    assert flags[-1] and not any(flags[:-1])


def test_configs_reject_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="substeps"):
        SceneConfig(substeps=0)
    with pytest.raises(ValueError, match="substeps"):
        SceneConfig(substeps=2)  # 16.7 ms timestep: unstable
    with pytest.raises(ValueError, match="t_max"):
        TaskConfig(t_max=3)
    with pytest.raises(ValueError, match="unknown key"):
        sim_config_from_dict({"scene": {"substepz": 4}})
    cfg = sim_config_from_dict({"scene": {"image_size": 64}, "env": {"obs_mode": "pixels"}})
    assert cfg.scene.image_size == 64 and cfg.env.obs_mode == "pixels"
