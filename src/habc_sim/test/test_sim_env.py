"""The gym-style env: seeding, observation layout, action spaces, pixels."""

import numpy as np
import pytest

from habc_sim.config import EnvConfig, ExpertConfig, SceneConfig, SimConfig
from habc_sim.env import ENV_STATE_NAMES, PouchEnv
from habc_sim.expert import ScriptedExpert


@pytest.fixture(scope="module")
def env() -> PouchEnv:
    return PouchEnv(SimConfig())


def _run(env: PouchEnv, seed: int, ticks: int) -> np.ndarray:
    env.reset(seed)
    expert = ScriptedExpert(env, ExpertConfig(), np.random.default_rng(seed))
    out = []
    for _ in range(ticks):
        obs, *_ = env.step(expert.act())
        out.append(np.concatenate([obs["proprio"], obs["env_state"]]))
    return np.asarray(out)


def test_same_seed_same_episode_different_seed_different_layout(env: PouchEnv):
    a = _run(env, 5, 40)
    b = _run(env, 5, 40)
    np.testing.assert_array_equal(a, b)
    c = _run(env, 6, 40)
    assert np.abs(a[0, 20:23] - c[0, 20:23]).max() > 1e-3  # marker elsewhere


def test_observation_keys_and_shapes(env: PouchEnv):
    obs = env.reset(0)
    assert set(obs) == {"proprio", "env_state", "task"}
    assert obs["proprio"].shape == (20,) and obs["proprio"].dtype == np.float32
    assert obs["env_state"].shape == (len(ENV_STATE_NAMES),)
    assert obs["task"] == env.prompt
    assert env.action_dim == 20


def test_ee_action_moves_the_tool_there(env: PouchEnv):
    obs = env.reset(0)
    action = obs["proprio"].astype(np.float64).copy()
    action[0] += 0.05  # left tool 5 cm forward
    action[12] -= 0.04  # right tool 4 cm lower
    for _ in range(20):
        obs, *_ = env.step(action)
    np.testing.assert_allclose(obs["proprio"][[0, 12]], action[[0, 12]], atol=0.004)


def test_wrong_action_shape_is_refused(env: PouchEnv):
    env.reset(0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros(14))


def test_joint_action_space():
    env = PouchEnv(SimConfig(env=EnvConfig(action_space="joint")))
    obs = env.reset(1)
    assert obs["proprio"].shape == (14,) and env.action_dim == 14
    target = obs["proprio"].astype(np.float64).copy()
    target[0] += 0.2
    for _ in range(20):
        obs, *_ = env.step(target)
    assert obs["proprio"][0] == pytest.approx(target[0], abs=0.01)


def test_pixel_observations_from_three_cameras():
    env = PouchEnv(SimConfig(scene=SceneConfig(image_size=32)), obs_mode="pixels")
    obs = env.reset(0)
    for cam in ("top", "left_wrist", "right_wrist"):
        img = obs[f"images.{cam}"]
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert img.std() > 1.0  # not a blank frame
    obs, *_ = env.step(None)
    assert obs["images.top"].shape == (32, 32, 3)  # collect's default: images every step
    obs, *_ = env.step(None, images=False)  # a caller that renders only when it publishes
    assert not any(k.startswith("images.") for k in obs) and obs["proprio"].shape == (20,)
    env.close()


def test_garbage_actions_never_reach_the_controllers_or_the_recorded_state(env: PouchEnv):
    """What an untrained policy sends: big random jumps, NaNs. The rig stays physical."""
    rng = np.random.default_rng(0)
    obs = env.reset(2)
    for t in range(40):
        action = obs["proprio"].astype(np.float64) + rng.normal(0.0, 0.3, 20)
        if t % 10 == 5:
            action[rng.integers(0, 20)] = np.nan
        obs, *_ = env.step(action)
        assert np.isfinite(env.rig.data.ctrl).all()
        for arm in ("left", "right"):
            assert 0.0 <= env.rig.gripper_opening(arm) <= 0.088
    assert env.invalid_actions == 4
