"""Batch dict -> model-ready tensors (normalisation, image scaling, prompt tokens).

Shared by the actor, the critic and the parent value head so all three see identical inputs.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from habc_core import features as F
from habc_trainer.models.config import ModelConfig
from habc_trainer.normalize import NormStats

_WORD = re.compile(r"[a-z0-9]+")


def hash_tokenize(prompts: Sequence[str], vocab_size: int, max_len: int) -> torch.Tensor:
    """Lower-cased words hashed (crc32, stable across processes) into buckets 1..vocab_size-1.

    Returns (B, max_len) int64 with 0 as padding. A stand-in for a VLA's tokenizer: the prompt
    encoder only needs to tell tasks apart.
    """
    # A batch holds a handful of distinct prompts: tokenise each once, then gather.
    uniq: dict[str, int] = {}
    index = [uniq.setdefault(p, len(uniq)) for p in prompts]
    table = torch.zeros(len(uniq), max_len, dtype=torch.int64)
    for p, i in uniq.items():
        ids = [1 + zlib.crc32(w.encode()) % (vocab_size - 1) for w in _WORD.findall(p.lower())]
        ids = ids[:max_len]
        if ids:
            table[i, : len(ids)] = torch.tensor(ids)
    return table[torch.tensor(index, dtype=torch.int64)]


def as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    array = np.asarray(x)
    if not array.flags.writeable:
        # Read-only buffers (ROS messages, memory maps) would be shared with a tensor that torch
        # assumes it may write to; a copy is cheap at inference size.
        array = array.copy()
    return torch.as_tensor(array)


def single_obs_batch(obs: Mapping[str, Any]) -> dict[str, Any]:
    """One observation (the infer boundary's keys) as a batch of one under ``OBS_PREFIX``."""
    batch: dict[str, Any] = {F.TASK: [obs[F.TASK]]}
    for key, value in obs.items():
        if key != F.TASK:
            batch[F.OBS_PREFIX + key] = as_tensor(value)[None]
    return batch


def prepare_obs(
    batch: Mapping[str, Any],
    prefix: str,
    cfg: ModelConfig,
    stats: NormStats,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Model inputs for the observation under ``prefix`` (features.OBS_PREFIX / NEXT_OBS_PREFIX).

    Returns {"proprio": (B, P) normalised, "env_state": (B, S) normalised (if configured),
    "images.<cam>": (B, 3, h, w) float in [0, 1] per configured camera, "task": (B, L) int64},
    all on ``device`` (default: where the proprio tensor already is).
    """
    out: dict[str, torch.Tensor] = {}
    proprio = as_tensor(batch[prefix + F.PROPRIO])
    device = proprio.device if device is None else torch.device(device)
    out[F.PROPRIO] = stats[F.PROPRIO].normalize(proprio.to(device).float())
    if cfg.env_state_dim:
        key = prefix + F.ENV_STATE
        if key not in batch:
            raise KeyError(f"model expects {key!r} (env_state_dim={cfg.env_state_dim})")
        out[F.ENV_STATE] = stats[F.ENV_STATE].normalize(as_tensor(batch[key]).to(device).float())
    for cam in cfg.cameras:
        key = prefix + F.image_key(cam)
        if key not in batch:
            raise KeyError(f"model expects camera {key!r}")
        img = as_tensor(batch[key])  # (B, h, w, 3) uint8
        out[F.image_key(cam)] = img.to(device).permute(0, 3, 1, 2).float().div_(255.0)
    out[F.TASK] = hash_tokenize(list(batch[F.TASK]), cfg.vocab_size, cfg.max_prompt_tokens).to(
        device
    )
    return out


def action_loss_mask(batch: Mapping[str, Any]) -> torch.Tensor:
    """(B, H, D) bool: chunk steps inside the episode, restricted to M^int on intervention windows.

    Demonstration and policy windows supervise every valid dim; an intervention window imitates
    only the dims (and steps) a human drove (spec §2, Eq. 1 masks).
    """
    valid = as_tensor(batch[F.ACTION_VALID]).bool()  # (B, H)
    m_int = as_tensor(batch[F.INTERVENTION_MASK]).bool()  # (B, H, D)
    is_int = as_tensor(batch[F.INTERVENTION_WINDOW]).bool()[:, None, None]
    return valid[:, :, None] & torch.where(is_int, m_int, torch.ones_like(m_int))
