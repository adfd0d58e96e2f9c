"""torchrun-style data parallelism (gloo on CPU) through torch's DDP: ranks stay in sync,
resume stays exact."""

import json
import os
import socket
import subprocess
import sys

import pytest

from habc_trainer.checkpoint import load_checkpoint

SCRIPT = r"""
import hashlib, json, sys
import numpy as np, torch
torch.set_num_threads(1)
from habc_trainer import train_round as tr
from habc_trainer.config import TrainConfig
from habc_trainer.models.example import SyntheticStreams
from habc_trainer.update import StepContext, build_learner, update
root, max_steps = sys.argv[1], (int(sys.argv[2]) or None)
cfg = TrainConfig(method="habc", model_preset="tiny", batch_size=8, steps_per_round=4,
                  warmup_steps=1, lr_warmup_steps=1, checkpoint_every=2)
mc = cfg.model_config().with_dims(proprio_dim=6, action_dim=4, env_state_dim=3)
streams = SyntheticStreams(mc, per_stream=24)
if root == "sync":  # a few updates on rank-specific batches, then compare the weights
    rank, cfg = tr.init_distributed(cfg)
    learner = build_learner(cfg, mc, streams.norm_stats())
    rng = np.random.default_rng(rank.rank)
    for i in range(3):
        batch = tr.draw_batch(streams, [2, 2, 4], rng)
        update(learner, batch, cfg, StepContext(i, 1), torch.Generator().manual_seed(rank.rank))
    h = hashlib.sha256()
    for m in learner.modules().values():
        for p in m.parameters():
            h.update(p.detach().numpy().tobytes())
    ddp = sorted(k for k, v in learner.sync.items() if "DataParallel" in type(v).__name__)
    print(json.dumps({"rank": rank.rank, "hash": h.hexdigest(), "ddp": ddp}))
else:
    tr.run_round(cfg, streams, root, 0, max_steps=max_steps, progress=False)
    print(json.dumps({"done": True}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_ranks(script: str, args: list[str], world: int = 2) -> list[dict]:
    """Run `script` as `world` gloo ranks (torchrun's environment); each one's last stdout line
    as JSON, in rank order."""
    port = _free_port()
    procs = []
    for rank in range(world):
        env = dict(
            os.environ,
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            OMP_NUM_THREADS="1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def _launch(root, max_steps=0, world=2):
    return launch_ranks(SCRIPT, [str(root), str(max_steps)], world)


@pytest.mark.slow
def test_ranks_on_different_batches_stay_in_sync():
    outs = _launch("sync")
    assert outs[0]["hash"] == outs[1]["hash"]  # gradients were averaged across ranks
    assert outs[0]["ddp"] == ["actor", "critic", "value"]  # by torch's DDP, not by hand


@pytest.mark.slow
def test_two_rank_round_resumes_exactly(tmp_path):
    _launch(tmp_path / "a")
    _launch(tmp_path / "b", max_steps=2)
    part = tmp_path / "b" / "habc" / "round_000.partial"
    assert len(load_checkpoint(part).trainer_state().np_rng_states) == 2
    _launch(tmp_path / "b")
    a = load_checkpoint(tmp_path / "a" / "habc" / "round_000").model
    b = load_checkpoint(tmp_path / "b" / "habc" / "round_000").model
    assert a.keys() == b.keys()
    assert all(bool((a[k] == b[k]).all()) for k in a)
