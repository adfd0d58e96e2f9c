"""A batch of windows gathered from the store's memmaps at once (the trainer's sampling path).

``gather_windows(streams, frames)`` returns exactly ``collate([streams.window(g) for g in
frames])`` (same keys, order, dtypes and values; the tests compare them), with one fancy-indexed
read per array and shard instead of a Python loop over windows: the chunk of H actions and
human flags of every window is one (B, H) row index, padded past the episode end and masked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from habc_core import features as F

if TYPE_CHECKING:  # streams imports this module
    from habc_trainer.streams import WindowStreams


def _take(streams: WindowStreams, key: str, shard: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows `rows` (any shape) of array `key`, each from shard index `shard` (same shape)."""
    flat_rows, flat_shard = rows.reshape(-1), shard.reshape(-1)
    spec = streams.store.keys[key]
    out = np.empty((flat_rows.size, *spec["shape"]), dtype=np.dtype(spec["dtype"]))
    for sid in np.unique(flat_shard):
        sel = flat_shard == sid
        mm = streams.store.shard_array(streams.shard_names[sid], key)
        out[sel] = mm[flat_rows[sel]]
    return out.reshape(*rows.shape, *spec["shape"])


def _resized(images: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or images.shape[1] == size:
        return images
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


def gather_windows(streams: WindowStreams, frames: np.ndarray) -> dict[str, Any]:
    """The collated windows anchored at global frame ids `frames` (B,)."""
    s, cfg = streams, streams.cfg
    g = np.asarray(frames, dtype=np.int64)
    k = np.searchsorted(s.episode_starts, g, side="right") - 1
    t = g - s.episode_starts[k]
    t_len = s.episode_starts[k + 1] - s.episode_starts[k]
    t_next = np.minimum(t + cfg.next_stride, t_len - 1)
    row0, shard = s.episode_rows[k], s.episode_shards[k]
    out: dict[str, Any] = {}
    for prefix, tt in ((F.OBS_PREFIX, t), (F.NEXT_OBS_PREFIX, t_next)):
        rows = row0 + tt
        out[prefix + F.PROPRIO] = _take(s, F.PROPRIO, shard, rows)
        if s.has_env_state:
            out[prefix + F.ENV_STATE] = _take(s, F.ENV_STATE, shard, rows)
        for cam in s.cameras:
            key = F.image_key(cam)
            out[prefix + key] = _resized(_take(s, key, shard, rows), cfg.image_size)
    steps = t[:, None] + np.arange(cfg.horizon)
    valid = steps < t_len[:, None]
    chunk_rows = row0[:, None] + np.minimum(steps, t_len[:, None] - 1)
    chunk_shard = np.broadcast_to(shard[:, None], chunk_rows.shape)
    actions = _take(s, F.ACTION, chunk_shard, chunk_rows).astype(np.float32, copy=False)
    actions[~valid] = 0.0
    human = _take(s, F.HUMAN, chunk_shard, chunk_rows) & valid[:, :, None]
    dims, arms = actions.shape[2], human.shape[2]
    arm_dims = s.arm_dims or dims // max(arms, 1)
    mask = np.zeros(actions.shape, dtype=bool)
    for a in range(arms):
        mask[:, :, a * arm_dims : (a + 1) * arm_dims] = human[:, :, a : a + 1]
    task_ids = np.asarray(s.episode_task_ids, dtype=np.int64)[k]
    out[F.TASK] = [s.tasks[i] for i in task_ids]
    out[F.TASK_ID] = task_ids
    out[F.ACTIONS] = actions
    out[F.ACTION_VALID] = valid
    out[F.INTERVENTION_MASK] = mask
    out[F.SOURCE] = np.asarray(s.episode_sources, dtype=np.int64)[k]
    labels = s.frame_labels
    out[F.OUTCOME_LABEL] = labels["label"][g].astype(np.float32)
    out[F.INTERVENTION_WINDOW] = labels["int"][g].astype(bool)
    out[F.EFFICIENCY_TARGET] = labels["eff"][g].astype(bool)
    out[F.TERMINAL_SUCCESS] = labels["term"][g].astype(bool)
    out[F.EPISODE_SUCCESS] = np.asarray(s.episode_successes, dtype=bool)[k]
    out[F.EPISODE_DONE] = t == t_len - 1
    out[F.REWARD] = labels["reward"][g].astype(np.float32)
    out[F.MC_RETURN] = labels["ret"][g].astype(np.float32)
    out[F.STEPS_TO_END] = (t_len - 1 - t).astype(np.int64)
    out[F.EPISODE_INDEX] = k.astype(np.int64)
    out[F.FRAME_INDEX] = t.astype(np.int64)
    out[F.MODEL_INDEX] = _take(s, F.MODEL_INDEX, shard, row0 + t).astype(np.int64)
    return {
        key: value if key == F.TASK else torch.from_numpy(np.ascontiguousarray(value))
        for key, value in out.items()
    }
