"""The actor weight a checkpoint's critic gives every frame of a store (for export and review).

The training step weighs the windows of one batch (update.actor_weights): the gate g from the
critic's detached heads, the method's table by sample kind (spec §4), unit mean over the
batch's valid non-SFT samples. Here the same gate and table run over every frame of the store
at once, and the unit mean is taken over all of its valid non-SFT frames: the weight each frame
would carry in a batch drawn from the whole store, at the checkpoint's step. Frames the
checkpoint's method never trains on (evaluation episodes) are NaN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from habc_trainer.checkpoint import load_checkpoint, restore_learner
from habc_trainer.streams import WindowStreams, stream_config_for
from habc_trainer.update import (
    as_train_batch,
    critic_gate,
    normalised_weights,
    recap_pass_of,
    sample_kinds,
    unnormalised_weights,
)
from habc_trainer.window_batch import gather_windows


@torch.no_grad()
def store_frame_weights(
    store: Any, checkpoint: Path | str, batch_size: int = 256
) -> list[np.ndarray]:
    """Per store episode, (T,) float32 weights from `checkpoint`'s critic and method."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt.train_config
    method = cfg.method_config()
    learner = restore_learner(ckpt, cfg, with_optimizers=False)
    for module in learner.modules().values():
        module.eval()
    round_index = int(ckpt.trainer["round_index"])
    last_round = max(int(e["round"]) for e in store.episodes)
    streams = WindowStreams(store, stream_config_for(cfg, last_round))
    total = streams.num_frames
    w_tilde = torch.zeros(total)
    valid = torch.zeros(total, dtype=torch.bool)
    kinds = torch.zeros(total, dtype=torch.int64)
    epsilon = float(ckpt.trainer.get("recap_epsilon", 0.0))
    for start in range(0, total, batch_size):
        frames = np.arange(start, min(start + batch_size, total))
        batch = as_train_batch(learner, gather_windows(streams, frames), cfg)
        k = sample_kinds(batch)
        g = torch.ones(len(frames))
        if method.train_critic:
            g, _ = critic_gate(learner.critic, batch.both_obs(), batch.terminal_success, method)
        recap = (
            recap_pass_of(learner.value, batch, cfg, epsilon) if method.gate == "recap" else None
        )
        w, ok = unnormalised_weights(
            batch, k, g, method, cfg, round_index, learner.model_index, recap
        )
        w_tilde[start : start + len(frames)], valid[start : start + len(frames)] = w, ok
        kinds[start : start + len(frames)] = k
    out = normalised_weights(w_tilde, valid, kinds, method, cfg).numpy().astype(np.float32)
    per_episode = [np.full(int(e["length"]), np.nan, np.float32) for e in store.episodes]
    for k, i in enumerate(streams.episode_ids):
        frames = streams.frames_of(k)
        per_episode[i] = out[frames.start : frames.stop]
    return per_episode
