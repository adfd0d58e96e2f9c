import numpy as np
import pytest

from habc_control.policies import DriftPolicy, load_policy


class _Fake:
    model_index = 42

    def infer(self, obs):
        return {"actions": np.zeros((50, 20), np.float32)}


def make_fake():
    return _Fake()


def test_empty_spec_gives_a_hold_still_policy():
    policy, index = load_policy("", horizon=50, per_arm=10)
    assert isinstance(policy, DriftPolicy) and index == -1
    proprio = np.arange(20, dtype=np.float32)
    out = policy.infer({"proprio": proprio, "task": "t"})["actions"]
    assert out.shape == (50, 20)
    np.testing.assert_array_equal(out[-1], proprio)


def test_drift_moves_x_of_each_arm():
    out = DriftPolicy(horizon=3, drift=0.01, per_arm=10).infer({"proprio": np.zeros(20)})
    np.testing.assert_allclose(out["actions"][:, 0], [0.01, 0.02, 0.03])
    np.testing.assert_allclose(out["actions"][:, 10], [0.01, 0.02, 0.03])
    assert np.all(out["actions"][:, 1:10] == 0)


def test_module_callable_spec_and_missing_checkpoint():
    policy, index = load_policy(f"{__name__}:make_fake")
    assert index == 42 and policy.infer({})["actions"].shape == (50, 20)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_policy("/nonexistent/ckpt_dir")


def test_the_collector_takes_a_policy_server_address():
    from habc_control.collect_policies import check_checkpoint, check_policy_spec

    check_policy_spec("ws://127.0.0.1:8765")  # no module 'ws' is looked for
    check_checkpoint("ws://127.0.0.1:8765", execute_steps=25, source="test")
