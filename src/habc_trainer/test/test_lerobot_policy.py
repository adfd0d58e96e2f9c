"""Tiny random-init SmolVLA, pi0 and pi0.5 as the HABC actor: train_round trains each (SFT,
then HABC), the checkpoint loads back, the loss honours M^int, the policy server serves it.
LeRobot venv only:

    make test-lerobot
"""

import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

from habc_core import features as F
from habc_core.contract import episode_dir

pytestmark = pytest.mark.lerobot

TASK = "put the pencil in the pouch"
KINDS = ("smolvla", "pi0", "pi05")


class Rounds(NamedTuple):
    kind: str  # the LeRobot policy type
    ckpt: Path  # <ckpt root>: sft/round_000 and habc/round_001


@pytest.fixture(scope="module", params=KINDS)
def rounds(request, tmp_path_factory):
    """Round 0 (SFT) and round 1 (HABC), 2 steps each, on synthetic pixel episodes."""
    from habc_trainer import train_round as tr
    from habc_trainer.models.lerobot_tiny import write_tiny
    from habc_trainer.round_cli import round_argv
    from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    policy_dir = write_tiny(root / kind, kind, horizon=10, image_size=64)
    pixels = {"cameras": ("top",), "image_hw": (64, 64)}
    specs = [
        SyntheticSpec(f"demo{i}", "P" * 20, source="demo", round=0, **pixels) for i in range(2)
    ]
    specs += [
        SyntheticSpec("ok", "P" * 15, outcome="success", **pixels),
        SyntheticSpec("saved", "P" * 5 + "H" * 15 + "P" * 5, outcome="success", **pixels),
        SyntheticSpec("fail", "P" * 12, outcome="failure", **pixels),
    ]
    for s in specs:
        write_synthetic_episode(episode_dir(root / "bags", TASK, s.round, s.episode_id), s)
    cfg = root / "train.yaml"
    cfg.write_text(
        "method: habc\nmodel_preset: tiny\n"
        f"model_overrides: {{lerobot: {policy_dir}, cameras: [top], image_size: 64}}\n"
        "batch_size: 4\nsteps_per_round: 2\nwarmup_steps: 0\nlr_warmup_steps: 0\n"
        "checkpoint_every: 2\nlog_every: 1\nnum_threads: 1\n"
    )
    for rnd, method in ((0, "sft"), (1, "habc")):
        assert tr.main(round_argv(cfg, root / "bags", root / "ckpt", rnd, method)) == 0
    return Rounds(kind, root / "ckpt")


def _obs(rng):
    return {
        F.PROPRIO: rng.normal(size=20).astype(np.float32),
        F.image_key("top"): rng.integers(0, 255, (64, 64, 3), np.uint8),
        F.TASK: TASK,
    }


def test_habc_trains_the_vla_and_its_checkpoint_loads_back(rounds):
    from habc_trainer.checkpoint import load_checkpoint, load_policy
    from habc_trainer.models.lerobot_policy import LeRobotPolicy

    ck = load_checkpoint(rounds.ckpt / "habc" / "round_001")
    assert ck.model_index == 4 and ck.train_config.method == "habc"
    assert ck.manifest["stream_sizes"]["int"] > 0  # the takeover became D_int windows
    a, b = (load_policy(rounds.ckpt / "habc" / "round_001") for _ in range(2))
    assert isinstance(a, LeRobotPolicy) and a.model_index == 4
    assert a.model.config.type == rounds.kind
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    sft = load_policy(rounds.ckpt / "sft" / "round_000")
    before, after = sft.model.state_dict(), a.model.state_dict()
    moved = [not torch.equal(before[k], after[k]) for k in after]
    assert any(moved)  # the HABC steps changed the actor
    torch.manual_seed(0)
    chunk = a.infer(_obs(np.random.default_rng(0)))["actions"]
    assert chunk.shape == (10, 20) and np.isfinite(chunk).all()


def _trained_policy_and_batch(rounds):
    """The round-1 checkpoint's policy and a batch of four example windows, prepared."""
    from habc_trainer.checkpoint import load_policy
    from habc_trainer.models.batch import TrainBatch
    from habc_trainer.models.example import make_example_batch

    policy = load_policy(rounds.ckpt / "habc" / "round_001")
    example = make_example_batch(policy.cfg, 4, np.random.default_rng(1))
    return policy, TrainBatch.build(example, policy.cfg, policy.stats, "cpu")


def test_the_loss_leaves_out_what_no_human_drove(rounds):
    from habc_trainer.models.batch import TrainBatch

    policy, batch = _trained_policy_and_batch(rounds)
    mask = torch.zeros_like(batch.action_mask)
    mask[:, :6, :10] = True  # a human drove the left arm for 6 steps
    masked = TrainBatch(**{**batch.__dict__, "action_mask": mask})

    def loss(b):
        return policy.loss(b, torch.Generator().manual_seed(3))

    base = loss(masked)
    other = masked.actions.clone()
    other[:, :, 10:] += 5.0  # the right arm: not supervised
    other[:, 6:, :10] -= 5.0  # past the takeover: not supervised
    same = loss(TrainBatch(**{**masked.__dict__, "actions": other}))
    torch.testing.assert_close(same, base)
    moved = masked.actions.clone()
    moved[:, :6, :10] += 5.0
    assert not torch.allclose(loss(TrainBatch(**{**masked.__dict__, "actions": moved})), base)


def test_the_vla_sees_the_robots_state(rounds):
    """pi0.5 takes no state argument: its prompt carries the state (256 bins), as LeRobot's."""
    from habc_trainer.models.batch import TrainBatch

    policy, batch = _trained_policy_and_batch(rounds)
    # The store's mean action: a loss of order one, where a change of state shows.
    mean = torch.as_tensor(policy.stats[F.ACTION].mean).expand_as(batch.actions)
    batch = TrainBatch(**{**batch.__dict__, "actions": mean.clone()})
    st = policy.stats[F.PROPRIO]
    losses = {}
    for end in ("min", "max"):
        z = st.normalize(torch.as_tensor(getattr(st, end))).expand_as(batch.obs[F.PROPRIO])
        at = TrainBatch(**{**batch.__dict__, "obs": {**batch.obs, F.PROPRIO: z}})
        losses[end] = policy.loss(at, torch.Generator().manual_seed(3))
        if rounds.kind == "pi05":
            (prompt, *_) = policy._prompts(at.tasks, z)
            # min -> bin 0, max -> bin 255; a dim that never moved stays at -1 (bin 0), as in
            # LeRobot's min-max normaliser
            bins = np.where(st.max > st.min, 255, 0) if end == "max" else np.zeros(20, int)
            assert f"State: {' '.join(map(str, bins))};\nAction: " in prompt
    assert not torch.allclose(losses["min"], losses["max"])


def test_the_policy_server_serves_the_trained_vla(rounds):
    from habc_core.policy_client import PolicyClient
    from habc_core.policy_server import PolicyServer
    from habc_trainer.serve import load_served_policy

    policy, meta = load_served_policy(str(rounds.ckpt / "habc" / "round_001"))
    assert meta["horizon"] == 10 and meta["model_index"] == 4
    server = PolicyServer(policy, port=0, metadata=meta)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = PolicyClient(server.url, timeout_s=60.0)
    try:
        out = client.infer(_obs(np.random.default_rng(2)))
        assert out["actions"].shape == (10, 20) and np.isfinite(out["actions"]).all()
        assert client.model_index == 4
    finally:
        client.close()
        server.shutdown()
        thread.join(timeout=5.0)


def test_a_missing_or_foreign_lerobot_dir_is_named(tmp_path):
    import dataclasses

    from habc_trainer.models.config import model_preset
    from habc_trainer.models.lerobot_policy import load_lerobot_config

    cfg = dataclasses.replace(
        model_preset("tiny"), lerobot=str(tmp_path), cameras=("top",)
    ).with_dims(proprio_dim=20, action_dim=20)
    with pytest.raises(ValueError, match="has no config.json"):
        load_lerobot_config(cfg)
    assert Path(tmp_path).is_dir()


def test_a_real_size_pi_config_is_read_as_it_stands_and_relative_actions_refused(tmp_path):
    import dataclasses

    from lerobot.policies.pi0.configuration_pi0 import PI0Config

    from habc_trainer.models.config import model_preset
    from habc_trainer.models.lerobot_policy import load_lerobot_config

    cfg = dataclasses.replace(
        model_preset("tiny"), lerobot=str(tmp_path), cameras=("top",), horizon=50
    ).with_dims(proprio_dim=20, action_dim=20)
    PI0Config(device="cpu")._save_pretrained(tmp_path)  # pi0_base's sizes: gemma_2b + 300m
    lr = load_lerobot_config(cfg)
    assert (lr.type, lr.paligemma_variant, lr.action_expert_variant) == (
        "pi0",
        "gemma_2b",
        "gemma_300m",
    )
    assert lr.input_features["observation.state"].shape == (20,)
    assert list(lr.image_features) == ["observation.images.top"]
    PI0Config(device="cpu", use_relative_actions=True)._save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="use_relative_actions"):
        load_lerobot_config(cfg)


def test_a_tiny_pi_is_built_at_its_sizes_or_not_at_all(tmp_path):
    import dataclasses
    import json

    from habc_trainer.models.config import model_preset
    from habc_trainer.models.lerobot_policy import LeRobotPolicy
    from habc_trainer.models.lerobot_tiny import TINY_SPEC, tiny_pi_build, write_tiny
    from habc_trainer.normalize import FeatureStats, NormStats

    policy_dir = write_tiny(tmp_path / "pi0", "pi0", horizon=10, image_size=64)
    cfg = dataclasses.replace(
        model_preset("tiny"), lerobot=str(policy_dir), cameras=("top",)
    ).with_dims(proprio_dim=20, action_dim=20)
    stats = NormStats({k: FeatureStats.identity(20) for k in (F.PROPRIO, F.ACTION)})
    policy = LeRobotPolicy(cfg, stats)
    inner = policy.model.model.paligemma_with_expert
    assert inner.paligemma.config.text_config.hidden_size == 64  # not gemma_2b's 2048
    assert inner.gemma_expert.config.hidden_size == 32  # not gemma_300m's 1024
    assert inner.paligemma.config.vision_config.num_hidden_layers == 1  # not SigLIP's 27
    assert sum(p.numel() for p in policy.parameters()) < 200_000
    with pytest.raises(RuntimeError, match="construction changed"):
        with tiny_pi_build(policy_dir / TINY_SPEC):
            pass  # nothing built through the patched names: refused, not silently real-size
    spec = json.loads((policy_dir / TINY_SPEC).read_text())
    spec["expert"]["num_heads"] = 4
    (policy_dir / TINY_SPEC).write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="written for 8"):
        LeRobotPolicy(cfg, stats)


def test_the_actor_exports_to_lerobots_own_layout(rounds, tmp_path):
    import contextlib

    from lerobot.policies.factory import get_policy_class

    from habc_trainer.checkpoint import load_policy
    from habc_trainer.models.lerobot_policy import export_pretrained
    from habc_trainer.models.lerobot_tiny import TINY_SPEC, tiny_pi_build

    out = export_pretrained(rounds.ckpt / "habc" / "round_001", tmp_path / "pretrained")
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    tiny = out / TINY_SPEC  # a tiny pi's sizes travel with it; LeRobot builds it inside
    assert tiny.is_file() == (rounds.kind != "smolvla")
    with tiny_pi_build(tiny) if tiny.is_file() else contextlib.nullcontext():
        theirs = get_policy_class(rounds.kind).from_pretrained(out)  # LeRobot's own loader
    ours = load_policy(rounds.ckpt / "habc" / "round_001").model.state_dict()
    for key, value in theirs.state_dict().items():
        assert torch.equal(value, ours[key]), key
    assert (out / "habc_norm.json").is_file()


_TWO_RANKS = r"""
import dataclasses, hashlib, json, sys
import numpy as np, torch
torch.set_num_threads(1)
from habc_trainer import train_round as tr
from habc_trainer.config import TrainConfig
from habc_trainer.models.example import SyntheticStreams
from habc_trainer.update import StepContext, build_learner, update
overrides = {"lerobot": sys.argv[1], "cameras": ("top",), "image_size": 64}
cfg = TrainConfig(method="habc", model_preset="tiny", batch_size=4, warmup_steps=0,
                  lr_warmup_steps=0, model_overrides=overrides)
rank, cfg = tr.init_distributed(cfg)
mc = cfg.model_config().with_dims(proprio_dim=20, action_dim=20)
streams = SyntheticStreams(mc, per_stream=8)
learner = build_learner(cfg, mc, streams.norm_stats())
rng = np.random.default_rng(rank.rank)
for i in range(2):
    batch = tr.draw_batch(streams, [2, 1, 1], rng)
    update(learner, batch, cfg, StepContext(i, 1), torch.Generator().manual_seed(rank.rank))
h = hashlib.sha256()
for p in learner.policy.parameters():
    h.update(p.detach().float().numpy().tobytes())
print(json.dumps({"hash": h.hexdigest(), "ddp": sorted(learner.sync)}))
"""


@pytest.mark.parametrize("kind", KINDS)
def test_two_gloo_ranks_train_the_vla_in_sync_through_ddp(tmp_path, kind):
    from test_distributed import launch_ranks

    from habc_trainer.models.lerobot_tiny import write_tiny

    policy_dir = write_tiny(tmp_path / kind, kind, horizon=10, image_size=64)
    outs = launch_ranks(_TWO_RANKS, [str(policy_dir)])
    assert outs[0]["hash"] == outs[1]["hash"]  # different batches, one model: DDP averaged
    assert outs[0]["ddp"] == ["actor", "critic", "value"]
