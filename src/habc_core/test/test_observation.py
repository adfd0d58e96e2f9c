"""The policy's observation dict, as the policy node and the sim env build it."""

import numpy as np

from habc_core.features import ENV_STATE, PROPRIO, TASK, image_key
from habc_core.observation import build_observation


def test_observation_keys_types_and_optional_parts():
    img = np.zeros((4, 4, 3), np.uint8)
    obs = build_observation(np.arange(20, dtype=np.float64), "put it in", {"top": img}, [1, 2])
    assert set(obs) == {PROPRIO, TASK, image_key("top"), ENV_STATE}
    assert obs[PROPRIO].dtype == np.float32 and obs[ENV_STATE].dtype == np.float32
    assert obs[image_key("top")] is img and obs[TASK] == "put it in"
    assert set(build_observation(np.zeros(20), "t")) == {PROPRIO, TASK}  # state-only, no sim
