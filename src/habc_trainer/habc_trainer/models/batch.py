"""The training batch: dict windows (features.py keys) -> one typed container of tensors.

The sample streams hand out dict batches (numpy-backed tensors, `task` a list of str). The update
reads a dozen of their fields as tensors of a fixed dtype and feeds the same normalised
observation to V_psi, the critic and the actor; ``TrainBatch.build`` converts every field once,
on the learner's device, so nothing downstream converts or prepares again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from habc_core import features as F
from habc_trainer.models.config import ModelConfig
from habc_trainer.models.inputs import action_loss_mask, as_tensor, prepare_obs
from habc_trainer.normalize import NormStats


def concat_batches(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate dict batches along the batch axis (lists are joined, tensors cat'ed)."""
    batches = [b for b in batches if b]
    if not batches:
        raise ValueError("concat_batches needs at least one non-empty batch")
    keys = set(batches[0])
    for b in batches[1:]:
        if set(b) != keys:
            raise KeyError(f"batches disagree on keys: {sorted(keys ^ set(b))}")
    out: dict[str, Any] = {}
    for k in batches[0]:
        vals = [b[k] for b in batches]
        if isinstance(vals[0], list | tuple):
            out[k] = [x for v in vals for x in v]
        else:
            out[k] = torch.cat(
                [
                    torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v
                    for v in vals
                ]
            )
    return out


@dataclass(frozen=True)
class TrainBatch:
    """B windows as the update and the actor loss consume them (all tensors on one device).

    ``obs`` / ``next_obs`` are the prepared model inputs of s_t / s_t+1 (models.inputs.prepare_obs:
    normalised proprio / env_state, [0, 1] images, prompt tokens). ``actions`` stay in robot units
    (the policy normalises them with its own statistics); ``action_mask`` is the supervised
    element mask (action_valid, restricted to M^int on intervention windows).
    """

    obs: dict[str, torch.Tensor]
    next_obs: dict[str, torch.Tensor]
    actions: torch.Tensor  # (B, H, D) float32
    action_mask: torch.Tensor  # (B, H, D) bool
    source: torch.Tensor  # (B,) int64: SOURCE_DEMO / SOURCE_ROLLOUT
    intervention_window: torch.Tensor  # (B,) bool
    outcome_label: torch.Tensor  # (B,) float32: 1 / 0, NaN when unlabeled
    efficiency_target: torch.Tensor  # (B,) bool: supervises V_e
    terminal_success: torch.Tensor  # (B,) bool: d_t = 1
    episode_done: torch.Tensor  # (B,) bool: last frame of its episode
    reward: torch.Tensor  # (B,) float32
    mc_return: torch.Tensor  # (B,) float32
    model_index: torch.Tensor  # (B,) int64: actor step that produced a_t (-1 human)
    # The prompts as text (B,): for actors with their own tokenizer (LeRobot VLAs); the prepared
    # observations carry the hashed tokens the flow actor reads.
    tasks: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        batch: Mapping[str, Any],
        cfg: ModelConfig,
        stats: NormStats,
        device: torch.device | str,
    ) -> TrainBatch:
        """Convert a dict batch once: every field a tensor of its dtype on ``device``."""
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

        def field(key: str, dtype: torch.dtype) -> torch.Tensor:
            return as_tensor(moved[key]).to(device=device, dtype=dtype)

        return cls(
            obs=prepare_obs(moved, F.OBS_PREFIX, cfg, stats, device),
            next_obs=prepare_obs(moved, F.NEXT_OBS_PREFIX, cfg, stats, device),
            actions=field(F.ACTIONS, torch.float32),
            action_mask=action_loss_mask(moved).to(device),
            source=field(F.SOURCE, torch.int64),
            intervention_window=field(F.INTERVENTION_WINDOW, torch.bool),
            outcome_label=field(F.OUTCOME_LABEL, torch.float32),
            efficiency_target=field(F.EFFICIENCY_TARGET, torch.bool),
            terminal_success=field(F.TERMINAL_SUCCESS, torch.bool),
            episode_done=field(F.EPISODE_DONE, torch.bool),
            reward=field(F.REWARD, torch.float32),
            mc_return=field(F.MC_RETURN, torch.float32),
            model_index=field(F.MODEL_INDEX, torch.int64),
            tasks=tuple(str(t) for t in moved[F.TASK]),
        )

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def both_obs(self) -> dict[str, torch.Tensor]:
        """[s_t; s_t+1] stacked (2B rows): one forward pass of a head for both states."""
        return {k: torch.cat([self.obs[k], self.next_obs[k]]) for k in self.obs}

    def subset(self, index: torch.Tensor) -> TrainBatch:
        """Rows ``index`` (K,) int64 of every field (prepared observations included)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                out[f.name] = {k: v[index.to(v.device)] for k, v in value.items()}
            elif isinstance(value, tuple):
                out[f.name] = tuple(value[i] for i in index.tolist()) if value else ()
            else:
                out[f.name] = value[index.to(value.device)]
        return TrainBatch(**out)
