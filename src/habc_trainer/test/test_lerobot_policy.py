"""A tiny random-init SmolVLA as the HABC actor: train_round trains it (SFT, then HABC), the
checkpoint loads back, the loss honours M^int, the policy server serves it. LeRobot venv only:

    make test-lerobot
"""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from habc_core import features as F
from habc_core.contract import episode_dir

pytestmark = pytest.mark.lerobot

TASK = "put the pencil in the pouch"


@pytest.fixture(scope="module")
def rounds(tmp_path_factory):
    """Round 0 (SFT) and round 1 (HABC), 2 steps each, on synthetic pixel episodes."""
    from habc_trainer import train_round as tr
    from habc_trainer.models.lerobot_tiny import write_tiny_smolvla
    from habc_trainer.round_cli import round_argv
    from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

    root = tmp_path_factory.mktemp("smolvla")
    policy_dir = write_tiny_smolvla(root / "smolvla", horizon=10, image_size=64)
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
    return root / "ckpt"


def _obs(rng):
    return {
        F.PROPRIO: rng.normal(size=20).astype(np.float32),
        F.image_key("top"): rng.integers(0, 255, (64, 64, 3), np.uint8),
        F.TASK: TASK,
    }


def test_habc_trains_the_vla_and_its_checkpoint_loads_back(rounds):
    from habc_trainer.checkpoint import load_checkpoint, load_policy
    from habc_trainer.models.lerobot_policy import LeRobotPolicy

    ck = load_checkpoint(rounds / "habc" / "round_001")
    assert ck.model_index == 4 and ck.train_config.method == "habc"
    assert ck.manifest["stream_sizes"]["int"] > 0  # the takeover became D_int windows
    a, b = (load_policy(rounds / "habc" / "round_001") for _ in range(2))
    assert isinstance(a, LeRobotPolicy) and a.model_index == 4
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    sft = load_policy(rounds / "sft" / "round_000")
    before, after = sft.model.state_dict(), a.model.state_dict()
    moved = [not torch.equal(before[k], after[k]) for k in after]
    assert any(moved)  # the HABC steps changed the actor
    torch.manual_seed(0)
    chunk = a.infer(_obs(np.random.default_rng(0)))["actions"]
    assert chunk.shape == (10, 20) and np.isfinite(chunk).all()


def test_the_loss_leaves_out_what_no_human_drove(rounds):
    from habc_trainer.checkpoint import load_policy
    from habc_trainer.models.batch import TrainBatch
    from habc_trainer.models.example import make_example_batch

    policy = load_policy(rounds / "habc" / "round_001")
    batch = TrainBatch.build(
        make_example_batch(policy.cfg, 4, np.random.default_rng(1)),
        policy.cfg,
        policy.stats,
        "cpu",
    )
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


def test_the_policy_server_serves_the_trained_vla(rounds):
    from habc_core.policy_client import PolicyClient
    from habc_core.policy_server import PolicyServer
    from habc_trainer.serve import load_served_policy

    policy, meta = load_served_policy(str(rounds / "habc" / "round_001"))
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


def test_the_actor_exports_to_lerobots_own_layout(rounds, tmp_path):
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    from habc_trainer.checkpoint import load_policy
    from habc_trainer.models.lerobot_policy import export_pretrained

    out = export_pretrained(rounds / "habc" / "round_001", tmp_path / "pretrained")
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    theirs = SmolVLAPolicy.from_pretrained(out)  # LeRobot's own loader
    ours = load_policy(rounds / "habc" / "round_001").model.state_dict()
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


def test_two_gloo_ranks_train_the_vla_in_sync_through_ddp(tmp_path):
    from test_distributed import launch_ranks

    from habc_trainer.models.lerobot_tiny import write_tiny_smolvla

    policy_dir = write_tiny_smolvla(tmp_path / "smolvla", horizon=10, image_size=64)
    outs = launch_ranks(_TWO_RANKS, [str(policy_dir)])
    assert outs[0]["hash"] == outs[1]["hash"]  # different batches, one model: DDP averaged
    assert outs[0]["ddp"] == ["actor", "critic", "value"]
