"""Synthetic batches in exactly the sample-stream format (like openpi's make_example).

Used by tests, the benchmark and warm-up; the layout mirrors features.py and the window
dataset: obs./next_obs. keys, (B, H, D) chunks, masks, labels and bookkeeping ints.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from habc_core import features as F
from habc_trainer.models.batch import concat_batches
from habc_trainer.models.config import ModelConfig
from habc_trainer.normalize import NormStats

EXAMPLE_TASK = "put the marker in the pencil pouch"


def make_example_batch(
    cfg: ModelConfig,
    batch: int,
    rng: np.random.Generator,
    *,
    source: int = F.SOURCE_ROLLOUT,
    outcome: float = 1.0,
    intervention: bool = False,
    image_hw: int | None = None,
    task: str = EXAMPLE_TASK,
    model_index: int = 0,
) -> dict[str, Any]:
    """A batch of ``batch`` windows of one kind.

    source/outcome/intervention pick the kind: demo (source=SOURCE_DEMO), labeled rollout
    (outcome 1 / 0), unlabeled rollout (outcome NaN) or intervention window (intervention=True).
    Actions are a smooth function of proprio so the actor has something to learn.
    """
    b, h, d, p = batch, cfg.horizon, cfg.action_dim, cfg.proprio_dim
    out: dict[str, Any] = {}
    for prefix in (F.OBS_PREFIX, F.NEXT_OBS_PREFIX):
        out[prefix + F.PROPRIO] = torch.from_numpy(rng.normal(size=(b, p)).astype(np.float32))
        if cfg.env_state_dim:
            out[prefix + F.ENV_STATE] = torch.from_numpy(
                rng.normal(size=(b, cfg.env_state_dim)).astype(np.float32)
            )
        hw = image_hw or cfg.image_size
        for cam in cfg.cameras:
            out[prefix + F.image_key(cam)] = torch.from_numpy(
                rng.integers(0, 256, size=(b, hw, hw, 3), dtype=np.uint8)
            )
    q = out[F.OBS_PREFIX + F.PROPRIO]
    steps = torch.linspace(0, 1, h)[None, :, None]
    base = q[:, None, :1].expand(b, h, d) if p else torch.zeros(b, h, d)
    actions = (base * 0.5 + steps * torch.arange(d)[None, None] * 0.1 + 2.0).float()
    steps_to_end = torch.from_numpy(rng.integers(0, 3 * h, size=b)).long()
    valid = torch.arange(h)[None] <= steps_to_end[:, None]
    actions = actions * valid[:, :, None]
    if intervention:
        m_int = torch.zeros(b, h, d, dtype=torch.bool)
        m_int[:, :, : max(1, d // 2)] = True  # the left arm's dims
    else:
        m_int = torch.zeros(b, h, d, dtype=torch.bool)
    is_demo = source == F.SOURCE_DEMO
    label = float("nan") if (is_demo or intervention) else float(outcome)
    success = bool(is_demo or outcome == 1.0)
    done = steps_to_end == 0
    out.update(
        {
            F.TASK: [task] * b,
            F.TASK_ID: torch.zeros(b, dtype=torch.int64),
            F.ACTIONS: actions,
            F.ACTION_VALID: valid,
            F.INTERVENTION_MASK: m_int,
            F.SOURCE: torch.full((b,), source, dtype=torch.int64),
            F.OUTCOME_LABEL: torch.full((b,), label, dtype=torch.float32),
            F.INTERVENTION_WINDOW: torch.full((b,), intervention, dtype=torch.bool),
            F.EFFICIENCY_TARGET: torch.full(
                (b,),
                success and not is_demo and (intervention or outcome == 1.0),
                dtype=torch.bool,
            ),
            F.TERMINAL_SUCCESS: done & success,
            F.EPISODE_SUCCESS: torch.full((b,), success, dtype=torch.bool),
            F.EPISODE_DONE: done,
            F.REWARD: torch.where(done & (not success), -100.0, -1.0).float(),
            F.MC_RETURN: -steps_to_end.float(),
            F.STEPS_TO_END: steps_to_end,
            F.MODEL_INDEX: torch.full((b,), -1 if is_demo else model_index, dtype=torch.int64),
            F.EPISODE_INDEX: torch.from_numpy(rng.integers(0, 100, size=b)).long(),
            F.FRAME_INDEX: torch.from_numpy(rng.integers(0, 500, size=b)).long(),
        }
    )
    return out


def make_example_obs(
    cfg: ModelConfig, rng: np.random.Generator, task: str = EXAMPLE_TASK
) -> dict[str, Any]:
    """One single-frame observation as the policy node passes it to ``Policy.infer``."""
    obs: dict[str, Any] = {
        F.PROPRIO: rng.normal(size=cfg.proprio_dim).astype(np.float32),
        F.TASK: task,
    }
    if cfg.env_state_dim:
        obs[F.ENV_STATE] = rng.normal(size=cfg.env_state_dim).astype(np.float32)
    for cam in cfg.cameras:
        obs[F.image_key(cam)] = rng.integers(
            0, 256, size=(cfg.image_size, cfg.image_size, 3), dtype=np.uint8
        )
    return obs


def example_stats(batch: dict[str, Any], cfg: ModelConfig) -> NormStats:
    """Normalisation statistics of a synthetic batch (valid action steps only)."""
    arrays = {
        F.PROPRIO: np.asarray(batch[F.OBS_PREFIX + F.PROPRIO]),
        F.ACTION: np.asarray(batch[F.ACTIONS][batch[F.ACTION_VALID]]),
    }
    if cfg.env_state_dim:
        arrays[F.ENV_STATE] = np.asarray(batch[F.OBS_PREFIX + F.ENV_STATE])
    return NormStats.from_arrays(arrays)


class SyntheticStreams:
    """In-memory ``streams.SampleStreams`` over fixed synthetic windows (tests, bench).

    Each stream holds ``per_stream`` windows; sampling draws indices with the caller's RNG so a
    run is reproducible and resumable exactly like one on the real store.
    """

    def __init__(
        self, cfg: ModelConfig, per_stream: int = 64, seed: int = 0, empty: tuple[str, ...] = ()
    ):
        rng = np.random.default_rng(seed)
        self.cfg = cfg
        kinds = {
            "sft": [dict(source=F.SOURCE_DEMO)],
            "int": [dict(intervention=True, outcome=1.0)],
            "auto": [dict(outcome=1.0), dict(outcome=0.0), dict(outcome=float("nan"))],
            "auto_heldout": [dict(outcome=1.0), dict(outcome=0.0)],
        }
        self.data: dict[str, dict[str, Any]] = {}
        for name, parts in kinds.items():
            if name in empty:
                continue
            n = max(1, per_stream // len(parts))
            self.data[name] = concat_batches(
                [make_example_batch(cfg, n, rng, **kw) for kw in parts]
            )
        self._stats = example_stats(concat_batches(list(self.data.values())), cfg)

    def size(self, stream: str) -> int:
        return len(self.data[stream][F.TASK]) if stream in self.data else 0

    def sample(self, stream: str, n: int, rng: np.random.Generator) -> dict[str, Any]:
        idx = rng.integers(0, self.size(stream), size=n)
        t = torch.from_numpy(idx)
        return {
            k: [v[i] for i in idx] if isinstance(v, list) else v[t]
            for k, v in self.data[stream].items()
        }

    def norm_stats(self) -> NormStats:
        return self._stats

    def dims(self) -> dict[str, int]:
        return {
            "proprio_dim": self.cfg.proprio_dim,
            "action_dim": self.cfg.action_dim,
            "env_state_dim": self.cfg.env_state_dim,
        }

    def manifest(self) -> dict[str, Any]:
        return {"synthetic": True, "sizes": {k: self.size(k) for k in self.data}}
