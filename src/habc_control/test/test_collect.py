"""The DDS-free collector: valid episode bags, authority switches, seeding, the CLI."""

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from habc_control.collect import (
    BagSink,
    CollectConfig,
    Collector,
    NullSink,
    main,
    make_policy_factory,
)
from habc_core.contract import (
    AUTHORITY_TOPIC,
    command_topic,
    find_episode_dirs,
    image_topic,
    joint_states_topic,
    read_sidecar,
)
from habc_sim.config import OperatorConfig, SceneConfig, SimConfig
from habc_sim.env import PouchEnv
from habc_trainer.episode import ExtractConfig, extract_episode


def _read(bag: Path) -> dict[str, list[tuple[int, object]]]:
    """topic -> [(log time ns, message)], decoded with the definitions stored in the bag."""
    out: dict[str, list[tuple[int, object]]] = defaultdict(list)
    with AnyReader([bag]) as reader:
        for conn, t, raw in reader.messages():
            out[conn.topic].append((t, reader.deserialize(raw, conn.msgtype)))
    return out


def _rollout_collector(env: PouchEnv, sink, policy: str = "weak-expert") -> Collector:
    factory = make_policy_factory(policy, env.cfg, 50, 25, model_index=7)
    return Collector(env, CollectConfig(mode="rollout"), sink, factory)


def test_pixel_demo_bag_has_cameras_joints_commands_authority_at_the_control_rate(
    tmp_path: Path,
):
    env = PouchEnv(SimConfig(scene=SceneConfig(image_size=32)), obs_mode="pixels")
    summary = Collector(env, CollectConfig(mode="demo"), BagSink(tmp_path)).run_episode(0)
    env.close()
    assert summary.outcome == "success"
    (bag,) = find_episode_dirs(tmp_path)
    meta = read_sidecar(bag)
    assert meta.source == "demo" and meta.outcome == "success" and meta.model_index == -1
    assert meta.robot == "arx_x5_bimanual_sim" and meta.control_hz == 30.0
    msgs = _read(bag)
    n = summary.ticks
    for cam in ("top", "left_wrist", "right_wrist"):
        frames = msgs[image_topic(cam)]
        assert len(frames) == n
        assert (frames[0][1].height, frames[0][1].width, frames[0][1].encoding) == (32, 32, "rgb8")
    for arm in ("left", "right"):
        assert len(msgs[joint_states_topic(arm)]) == n
        assert len(msgs[joint_states_topic(arm)][0][1].position) == 7  # 6 joints + gripper
        cmds = msgs[command_topic(arm)]
        assert len(cmds) == n and len(cmds[0][1].targets) == 9  # EE: xyz + 6-D rotation
        # A demo is the operator's throughout, once the first request has reached the driver
        # (a tick later, as in the graph: the driver holds the arm until then).
        assert cmds[0][1].authority == 2 and all(m.authority == 1 for _, m in cmds[1:])
        stamps = np.array([t for t, _ in cmds])
        assert np.all(np.abs(np.diff(stamps) - 1e9 / 30) <= 1)  # one command per 30 Hz tick
    auth = msgs[AUTHORITY_TOPIC]
    assert auth and max(np.diff([t for t, _ in auth])) <= 1e9  # heartbeat >= 1 Hz
    # The trainer reads it back onto the control clock: one frame per tick.
    ep = extract_episode(bag, ExtractConfig(image_size=32))
    assert ep.length == n and ep.info.outcome == "success" and ep.info.source == "demo"
    for cam in ("top", "left_wrist", "right_wrist"):
        assert ep.arrays[f"images.{cam}"].shape == (n, 32, 32, 3)
    assert ep.arrays["action"].shape == (n, 20) and ep.arrays["proprio"].shape == (n, 20)
    assert ep.arrays["env_state"].shape == (n, 13) and ep.arrays["human"].all()


def test_rollout_authority_switches_mid_episode_and_back(tmp_path: Path):
    cfg = SimConfig(
        operator=OperatorConfig(
            intervene_prob=1.0, stall_ticks=15, reaction_ticks=(1, 1), hand_back_prob=1.0
        )
    )
    env = PouchEnv(cfg)
    # `replay` of another seed's demo: an open-loop policy that stalls on this layout.
    summary = _rollout_collector(env, BagSink(tmp_path), policy="replay").run_episode(3)
    events = summary.operator["events"]
    take = next(e for e in events if e["kind"] == "take")
    back = next(e for e in events if e["kind"] == "hand_back")
    (bag,) = find_episode_dirs(tmp_path)
    msgs = _read(bag)
    arm = take["arms"][0]
    auth = [m.authority for _, m in msgs[command_topic(arm)]]
    model = [m.model_index for _, m in msgs[command_topic(arm)]]
    # The driver executes the mux's request a tick later, as in the graph: it holds at tick 0,
    # and each switch reaches the executed commands one tick after the authority changed.
    t0, t1 = take["tick"] + 1, back["tick"] + 1
    assert auth[0] == 2 and set(auth[1:t0]) == {0} and auth[t0] == 1  # POLICY -> HUMAN
    assert set(auth[t0:t1]) == {1} and auth[t1] == 0  # HUMAN -> POLICY at the hand-back
    assert set(model[t0:t1]) == {-1} and 7 in model[:t0]  # human commands carry no model
    # The authority topic records both switches, with the simulated operator as the source.
    switches = [(t, list(m.authority), m.source) for t, m in msgs[AUTHORITY_TOPIC]]
    i = ("left", "right").index(arm)
    assert any(a[i] == 1 and s == "sim_operator" for _, a, s in switches)
    assert read_sidecar(bag).intervened and read_sidecar(bag).model_index == 7


def test_policy_gets_a_fresh_chunk_after_hand_back():
    cfg = SimConfig(
        operator=OperatorConfig(
            intervene_prob=1.0, stall_ticks=15, reaction_ticks=(1, 1), hand_back_prob=1.0
        )
    )
    env = PouchEnv(cfg)
    calls: list[int] = []
    factory = make_policy_factory("replay", env.cfg, 50, 25, 0)

    def spying(env_, seed):
        policy = factory(env_, seed)
        infer = policy.infer

        def wrapped(obs):
            calls.append(env_.tick)
            return infer(obs)

        policy.infer = wrapped
        return policy

    s = Collector(env, CollectConfig(mode="rollout"), NullSink(), spying).run_episode(3)
    back = next(e["tick"] for e in s.operator["events"] if e["kind"] == "hand_back")
    assert back in calls  # inference on the tick control returns, not the stale chunk's rest


class _RandomPolicy:
    """An untrained policy: random 50-step chunks around the current pose."""

    model_index = 3

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def infer(self, obs):
        base = np.asarray(obs["proprio"], dtype=np.float32)
        return {"actions": base + self.rng.normal(0.0, 0.2, (50, base.shape[0])).astype("f4")}


def test_an_untrained_policy_still_yields_a_bag_the_trainer_accepts(tmp_path: Path):
    env = PouchEnv(SimConfig(operator=OperatorConfig(intervene_prob=0.0)))
    collector = Collector(
        env, CollectConfig(mode="eval"), BagSink(tmp_path), lambda env_, seed: _RandomPolicy(seed)
    )
    summary = collector.run_episode(1)
    (bag,) = find_episode_dirs(tmp_path)
    ep = extract_episode(bag, ExtractConfig(cameras=()))  # raises on out-of-range values
    assert ep.length == summary.ticks
    grip = ep.arrays["action"][:, [9, 19]]
    assert grip.min() >= 0.0 and grip.max() <= 0.088  # the executed (clipped) command


def test_same_seed_same_episode():
    env = PouchEnv(SimConfig())
    c = _rollout_collector(env, NullSink())
    a, b = c.run_episode(11), c.run_episode(11)
    assert (a.ticks, a.outcome, a.operator, a.milestones) == (
        b.ticks,
        b.outcome,
        b.operator,
        b.milestones,
    )


def test_eval_never_intervenes():
    env = PouchEnv(SimConfig(operator=OperatorConfig(intervene_prob=1.0, stall_ticks=5)))
    factory = make_policy_factory("replay", env.cfg, 50, 25, 0)
    s = Collector(env, CollectConfig(mode="eval"), NullSink(), factory).run_episode(2)
    assert not s.intervened and s.operator["events"] == []


def test_cli_writes_valid_demo_bags(tmp_path: Path, capsys):
    assert main(["--demos", "2", "--out", str(tmp_path), "--obs", "state", "--quiet"]) == 0
    bags = find_episode_dirs(tmp_path)
    assert len(bags) == 2
    for bag in bags:
        meta = read_sidecar(bag)
        assert meta.source == "demo" and meta.outcome in ("success", "failure")
        assert (bag / "sim_log.yaml").is_file()
    out = capsys.readouterr().out
    assert "episodes: 2" in out and "ticks/s" in out


def test_config_validation():
    with pytest.raises(ValueError, match="mode"):
        CollectConfig(mode="play")
    with pytest.raises(ValueError, match="policy"):
        make_policy_factory("nonsense", SimConfig(), 50, 25, 0)


def test_a_loaded_policy_is_seeded_per_episode_whatever_ran_before(monkeypatch):
    import torch

    import habc_control.policies as policies
    from habc_control.collect import make_policy_factory

    class TorchNoisePolicy:
        def infer(self, obs):
            return {"actions": torch.rand(3).numpy()}

    monkeypatch.setattr(policies, "load_policy", lambda spec, horizon: (TorchNoisePolicy(), 0))
    factory = make_policy_factory("pkg:noise", None, 50, 25, 0)
    first = factory(None, 7).infer({})["actions"]
    torch.rand(100)  # other episodes' draws in the same process
    factory(None, 3).infer({})
    again = factory(None, 7).infer({})["actions"]
    assert (first == again).all()
