"""Policy server and client on localhost: round trip, errors relayed, a lost server named."""

import threading

import numpy as np
import pytest

from habc_core.policy import PREFIX_ACTIONS, PREFIX_FROZEN, PREFIX_GUIDED
from habc_core.policy_client import PolicyClient, PolicyServerError
from habc_core.policy_server import PolicyServer
from habc_core.policy_wire import WireError, pack, unpack


class EchoPolicy:
    """Chunk = proprio repeated H times, plus the mean of the top image (checks the pixels)."""

    model_index = 42

    def __init__(self, horizon: int = 4) -> None:
        self.horizon = horizon
        self.seen: list[dict] = []

    def infer(self, obs):
        self.seen.append(obs)
        if obs.get("task") == "fail":
            raise RuntimeError("the model broke")
        actions = np.repeat(np.asarray(obs["proprio"], np.float32)[None], self.horizon, 0)
        actions[:, 0] += float(np.mean(obs["images.top"])) if "images.top" in obs else 0.0
        out = {"actions": actions, "model_index": np.int64(self.model_index)}
        if PREFIX_ACTIONS in obs:  # "inpaints": starts where the running chunk goes on
            actions[: len(obs[PREFIX_ACTIONS])] = obs[PREFIX_ACTIONS][: self.horizon]
            out[PREFIX_GUIDED] = True
        return out


@pytest.fixture()
def server():
    policy = EchoPolicy()
    srv = PolicyServer(policy, port=0, metadata={"horizon": 4, "action_dim": 3})
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    thread.join(timeout=5.0)


def test_round_trip_carries_arrays_task_and_model_index(server):
    client = PolicyClient(server.url)
    obs = {
        "proprio": np.arange(3, dtype=np.float32),
        "images.top": np.full((8, 8, 3), 2, np.uint8),
        "task": "put the marker in the pouch",
    }
    try:
        assert client.metadata()["horizon"] == 4 and client.model_index == 42
        out = client.infer(obs)
    finally:
        client.close()
    assert out["actions"].dtype == np.float32 and out["actions"].shape == (4, 3)
    np.testing.assert_array_equal(out["actions"][:, 0], 2.0)
    np.testing.assert_array_equal(out["actions"][:, 1:], np.tile([1.0, 2.0], (4, 1)))
    seen = server.policy.seen[-1]
    assert seen["task"] == obs["task"] and seen["images.top"].dtype == np.uint8
    assert client.model_index == 42 and server.requests == 1


def test_real_time_chunking_crosses_the_wire(server):
    """The running chunk's prefix reaches the served policy; its 'guided' answer comes back."""
    client = PolicyClient(server.url)
    prefix = np.full((2, 3), 7.0, np.float32)
    obs = {"proprio": np.zeros(3, np.float32), "task": "", PREFIX_ACTIONS: prefix}
    try:
        out = client.infer({**obs, PREFIX_FROZEN: 1})
    finally:
        client.close()
    seen = server.policy.seen[-1]
    assert seen[PREFIX_FROZEN] == 1 and np.array_equal(seen[PREFIX_ACTIONS], prefix)
    assert out[PREFIX_GUIDED] is True and np.array_equal(out["actions"][:2], prefix)


def test_a_failed_inference_is_relayed_and_the_server_goes_on(server):
    client = PolicyClient(server.url)
    try:
        with pytest.raises(PolicyServerError, match="inference failed: RuntimeError: the model"):
            client.infer({"proprio": np.zeros(3, np.float32), "task": "fail"})
        assert client.infer({"proprio": np.zeros(3, np.float32)})["actions"].shape == (4, 3)
    finally:
        client.close()


def test_a_lost_server_is_named_and_a_new_one_is_reached_again():
    policy = EchoPolicy()
    srv = PolicyServer(policy, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    client = PolicyClient(srv.url, timeout_s=2.0, connect_timeout_s=1.0)
    obs = {"proprio": np.zeros(3, np.float32)}
    assert client.infer(obs)["actions"].shape == (4, 3)
    port = srv.port
    srv.shutdown()
    thread.join(timeout=5.0)
    with pytest.raises(PolicyServerError, match=f"policy server ws://127.0.0.1:{port}"):
        client.infer(obs)
    with pytest.raises(PolicyServerError):  # still gone: a fresh connection is tried, refused
        client.infer(obs)
    again = PolicyServer(policy, port=port)
    thread = threading.Thread(target=again.serve_forever, daemon=True)
    thread.start()
    try:
        assert client.infer(obs)["actions"].shape == (4, 3)
    finally:
        client.close()
        again.shutdown()
        thread.join(timeout=5.0)


def test_the_wire_refuses_what_is_not_plain_data():
    with pytest.raises(WireError, match="dtype object"):
        pack({"obs": {"x": np.array([object()], dtype=object)}})
    with pytest.raises(WireError, match="not a msgpack message"):
        unpack(b"\xc1")
    bad = pack({"x": np.zeros(4, np.float32)}).replace(b"<f4", b"|O8")
    with pytest.raises(WireError, match="refused"):
        unpack(bad)
    with pytest.raises(ValueError, match="ws://host:port"):
        PolicyClient("http://localhost:1")


def test_one_reading_of_a_policy_spec(tmp_path):
    from habc_core.policy import spec_kind

    (tmp_path / "a:b").mkdir()  # a directory whose name has a colon stays a checkpoint
    assert spec_kind("") == "hold"
    assert spec_kind("ws://gpu-box:8765") == spec_kind("wss://h:1") == "server"
    assert spec_kind("my_pkg.policies:make") == "callable"
    assert spec_kind(str(tmp_path / "a:b")) == "checkpoint"
    assert spec_kind("ckpt/habc/round_001") == "checkpoint"
