"""The trainer's side of the policy boundary: ``TrainablePolicy`` and the flow-actor wrapper.

The trainer only calls ``loss(batch, generator) -> (B,)`` and the node side only calls
``infer(obs) -> {"actions": (H, D)}``; a pretrained VLA (LeRobot pi0 / pi0.5 / SmolVLA expose a
reduction="none" loss) can be wrapped the same way without touching the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from habc_core import features as F
from habc_core.policy import ACTIONS_OUT, PREFIX_ACTIONS, PREFIX_FROZEN, PREFIX_GUIDED, Policy
from habc_trainer import flow_matching as fm
from habc_trainer.models.actor import FlowActor
from habc_trainer.models.batch import TrainBatch
from habc_trainer.models.config import ModelConfig
from habc_trainer.models.inputs import prepare_obs, single_obs_batch
from habc_trainer.normalize import NormStats


@runtime_checkable
class TrainablePolicy(Policy, Protocol):
    """What the trainer needs from an actor on top of the infer boundary (habc_core.policy)."""

    def loss(self, batch: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
        """Per-sample loss (B,) honouring action_valid and M^int; differentiable."""
        ...

    def parameters(self): ...


class FlowPolicy(nn.Module):
    """FlowActor + normalisation statistics; implements ``TrainablePolicy``."""

    def __init__(self, cfg: ModelConfig, stats: NormStats):
        super().__init__()
        self.cfg = cfg
        self.stats = stats
        self.model = FlowActor(cfg)

    def loss(
        self, batch: TrainBatch | Mapping[str, Any], generator: torch.Generator
    ) -> torch.Tensor:
        """Per-sample flow loss (B,); a TrainBatch's prepared observation is used as given.

        A dict batch (features.py keys) is converted first; the update hands the TrainBatch it
        already built, so the observation is prepared once per step, not once per consumer.
        """
        if not isinstance(batch, TrainBatch):
            batch = TrainBatch.build(batch, self.cfg, self.stats, next(self.parameters()).device)
        actions = self.stats[F.ACTION].normalize(batch.actions)
        # Zero-padded steps past the episode end are masked; keep them finite after normalising.
        mask = batch.action_mask
        actions = torch.where(mask.any(-1, keepdim=True), actions, torch.zeros_like(actions))
        return self.model.flow_loss(batch.obs, actions, mask, generator)

    @torch.no_grad()
    def infer_batch(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Batched inference on obs.-prefixed keys -> (B, H, D) un-normalised chunk."""
        device = next(self.parameters()).device
        obs = prepare_obs(batch, F.OBS_PREFIX, self.cfg, self.stats, device)
        return self.stats[F.ACTION].unnormalize(self.model.sample(obs, generator))

    @torch.no_grad()
    def infer(
        self, obs: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, np.ndarray]:
        """One chunk; with a running chunk's prefix in `obs` (real-time chunking) the chunk is
        inpainted on it, so the switch to it continues what the arm is doing."""
        obs = dict(obs)
        prefix = obs.pop(PREFIX_ACTIONS, None)
        frozen = int(obs.pop(PREFIX_FROZEN, 0))
        was_training = self.training
        self.eval()
        try:
            if prefix is None or len(prefix) == 0:
                chunk = self.infer_batch(single_obs_batch(obs), generator)[0]
            else:
                chunk = self._inpaint(obs, np.asarray(prefix, np.float32), frozen, generator)
        finally:
            self.train(was_training)
        out = {ACTIONS_OUT: chunk.cpu().numpy().astype(np.float32)}
        if prefix is not None and len(prefix):
            out[PREFIX_GUIDED] = True
        return out

    def warm_up(self) -> None:
        """One free and one inpainted inference on example inputs (the policy node calls it
        before it runs): the first inpainted one sets up autograd (0.4 s alone on this CPU); in
        the rollout graph's loop the first inpainted chunk came 2.3 s after the first one, and
        the recorder beside it missed the arms' state for 154 ms."""
        from habc_trainer.models.example import make_example_obs

        obs = make_example_obs(self.cfg, np.random.default_rng(0))
        prefix = np.zeros((self.cfg.horizon // 2, self.cfg.action_dim), np.float32)
        generator = torch.Generator().manual_seed(0)  # the global RNG is left as it was
        self.infer(obs, generator)
        self.infer({**obs, PREFIX_ACTIONS: prefix, PREFIX_FROZEN: 1}, generator)

    def _inpaint(
        self,
        obs: Mapping[str, Any],
        prefix: np.ndarray,
        frozen: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        h, d = self.cfg.horizon, self.cfg.action_dim
        if prefix.ndim != 2 or prefix.shape[1] != d or prefix.shape[0] > h:
            raise ValueError(f"{PREFIX_ACTIONS}: expected (P <= {h}, {d}), got {prefix.shape}")
        device = next(self.parameters()).device
        prepared = prepare_obs(single_obs_batch(obs), F.OBS_PREFIX, self.cfg, self.stats, device)
        target = torch.zeros(1, h, d, device=device)
        target[0, : len(prefix)] = self.stats[F.ACTION].normalize(
            torch.as_tensor(prefix, device=device)
        )
        weights = fm.prefix_weights(h, len(prefix), min(max(frozen, 0), len(prefix)))
        sample = self.model.sample_inpainted(prepared, target, weights.to(device), generator)
        return self.stats[F.ACTION].unnormalize(sample)[0]


def make_policy(cfg: ModelConfig, stats: NormStats) -> nn.Module:
    """The actor a model config names: our flow actor, or a LeRobot policy (``cfg.lerobot``)."""
    if cfg.lerobot:
        # LeRobot lives in its own venv (Python 3.12): imported only when a config asks for it.
        from habc_trainer.models.lerobot_policy import LeRobotPolicy

        return LeRobotPolicy(cfg, stats)
    return FlowPolicy(cfg, stats)
