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

from habc_trainer import weights as W
from habc_trainer.checkpoint import load_checkpoint, restore_learner
from habc_trainer.streams import WindowStreams, collate, stream_config_for
from habc_trainer.update import (
    DEMO,
    as_train_batch,
    critic_gate,
    pre_weights,
    sample_kinds,
    stale_rollouts,
)


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
    ir_on = method.intervention_reweighting and round_index >= cfg.ir_start_round
    total = streams.num_frames
    w_tilde = np.zeros(total, np.float32)
    valid = np.zeros(total, bool)
    non_sft = np.zeros(total, bool)
    for start in range(0, total, batch_size):
        frames = range(start, min(start + batch_size, total))
        batch = as_train_batch(learner, collate([streams.window(g) for g in frames]), cfg)
        kinds = sample_kinds(batch)
        g = torch.ones(len(frames))
        if method.train_critic:
            g, _ = critic_gate(learner.critic, batch.both_obs(), batch.terminal_success, method)
        recap_pass = success_keep = None
        if method.gate == "recap":
            both = batch.both_obs()
            v_t, v_n = learner.value.expected(learner.value(both)).split(len(frames))
            adv = W.recap_advantage(batch.reward, v_t, v_n, batch.episode_done, cfg.gamma)
            recap_pass = W.recap_filter(adv, float(ckpt.trainer.get("recap_epsilon", 0.0)))
        if method.gate == "success":
            success_keep = W.success_filter(batch.outcome_label, batch.intervention_window)
        w = pre_weights(kinds, g, method, ir_on, recap_pass, success_keep)
        ok = batch.action_mask.any(dim=(1, 2)) & ~stale_rollouts(
            batch, kinds, learner.model_index, cfg.stale_cutoff
        )
        sl = slice(frames.start, frames.stop)
        w_tilde[sl] = w.cpu().numpy()
        valid[sl] = ok.cpu().numpy()
        non_sft[sl] = (kinds != DEMO).cpu().numpy()
    out = np.where(valid, 1.0, 0.0).astype(np.float32)  # SFT frames: 1 when valid
    if method.normalize:
        mean_w = W.unit_mean(
            torch.from_numpy(w_tilde), torch.from_numpy(valid & non_sft), cfg.weight_eps
        )
        out = np.where(non_sft, mean_w.numpy(), out)
    else:
        out = np.where(non_sft, w_tilde * valid, out)
    per_episode = [np.full(int(e["length"]), np.nan, np.float32) for e in store.episodes]
    for k, i in enumerate(streams.episode_ids):
        frames = streams.frames_of(k)
        per_episode[i] = out[frames.start : frames.stop]
    return per_episode
