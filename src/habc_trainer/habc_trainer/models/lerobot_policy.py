"""A LeRobot VLA as the HABC actor: ``TrainablePolicy`` around a LeRobot policy (SmolVLA).

Runs in the LeRobot venv (``make lerobot-env``). A model config with ``lerobot: <dir>`` makes
``build_learner`` and ``load_policy`` build this instead of the flow actor, so ``train_round``
trains it under every method and the policy server serves it; the critic and the parent value
head stay ours.

The trainer's batch is handed over as LeRobot's processors would leave it: our normalised
proprio as ``observation.state`` (a sim's env state reaches only our critic), [0, 1] images as
``observation.images.<camera>``, the prompt (with LeRobot's trailing newline) through the VLM's
own tokenizer, actions normalised with our statistics. The loss is LeRobot's per-element flow
loss (B, H, D) from the policy's inner model, reduced with our supervised mask: steps past the
episode end (``action_valid``) and, on intervention windows, the dims no human drove (M^int)
are left out. LeRobot's own ``forward(reduction="none")`` only knows padded steps.

Supported: ``smolvla``. pi0 / pi0.5 share the inner call (pi0.5 without a state argument) but
need PaliGemma weights and ~17 GB to build; they are not tested here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from habc_core import features as F
from habc_core.policy import ACTIONS_OUT
from habc_trainer.models.batch import TrainBatch
from habc_trainer.models.config import ModelConfig
from habc_trainer.models.inputs import prepare_obs, single_obs_batch
from habc_trainer.normalize import NormStats

SUPPORTED = ("smolvla",)
STATE = "observation.state"
IMAGE_PREFIX = "observation.images."
ACTION = "action"


def load_lerobot_config(cfg: ModelConfig) -> Any:
    """The LeRobot policy config in ``cfg.lerobot``, its features set from our data dims."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.configs.types import FeatureType, PolicyFeature

    path = Path(cfg.lerobot)
    if not (path / "config.json").is_file():
        raise ValueError(f"lerobot: {cfg.lerobot!r} has no config.json (a LeRobot policy dir)")
    lr = PreTrainedConfig.from_pretrained(path)
    if lr.type not in SUPPORTED:
        raise ValueError(f"lerobot: policy type {lr.type!r}; supported: {list(SUPPORTED)}")
    cfg.check_dims()
    if lr.chunk_size != cfg.horizon:
        raise ValueError(
            f"lerobot: chunk_size {lr.chunk_size} != the model's horizon {cfg.horizon}"
        )
    # The robot's state only: a simulator's privileged env state (when the store has it) goes
    # to our critic and value head, never to the VLA, which has none on a real rig.
    for name, dim, room in (
        ("proprio_dim", cfg.proprio_dim, lr.max_state_dim),
        ("action_dim", cfg.action_dim, lr.max_action_dim),
    ):
        if dim > room:
            raise ValueError(f"lerobot: {name} {dim} > the policy's max ({room}); raise it there")
    lr.input_features = {STATE: PolicyFeature(type=FeatureType.STATE, shape=(cfg.proprio_dim,))}
    for cam in cfg.cameras:
        lr.input_features[IMAGE_PREFIX + cam] = PolicyFeature(
            type=FeatureType.VISUAL, shape=(3, cfg.image_size, cfg.image_size)
        )
    lr.output_features = {ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(cfg.action_dim,))}
    lr.n_action_steps = cfg.execute_steps
    lr.device = "cpu"
    return lr


class LeRobotPolicy(nn.Module):
    """LeRobot policy + our normalisation statistics; implements ``TrainablePolicy``."""

    def __init__(self, cfg: ModelConfig, stats: NormStats) -> None:
        super().__init__()
        from lerobot.policies.factory import get_policy_class
        from transformers import AutoTokenizer

        if not cfg.cameras:
            raise ValueError("lerobot: a VLA needs camera images; set the model's cameras")
        self.cfg = cfg
        self.stats = stats
        lr = load_lerobot_config(cfg)
        policy_cls = get_policy_class(lr.type)
        if (Path(cfg.lerobot) / "model.safetensors").is_file():
            self.model = policy_cls.from_pretrained(cfg.lerobot, config=lr)
        else:
            self.model = policy_cls(lr)
        self.lerobot_config = lr
        self.tokenizer = AutoTokenizer.from_pretrained(lr.vlm_model_name)

    # --- LeRobot's inputs from ours ---
    def _inputs(self, obs: Mapping[str, torch.Tensor], tasks: tuple[str, ...]) -> dict[str, Any]:
        from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

        state = obs[F.PROPRIO]
        out: dict[str, Any] = {STATE: state}
        for cam in self.cfg.cameras:
            out[IMAGE_PREFIX + cam] = obs[F.image_key(cam)]
        if len(tasks) != state.shape[0]:
            raise ValueError(f"tasks: {len(tasks)} prompts for a batch of {state.shape[0]}")
        tokens = self.tokenizer(
            [t if t.endswith("\n") else t + "\n" for t in tasks],  # LeRobot's NewLineTask step
            padding="max_length",
            padding_side="right",
            truncation=True,
            max_length=self.lerobot_config.tokenizer_max_length,
            return_tensors="pt",
        )
        out[OBS_LANGUAGE_TOKENS] = tokens["input_ids"].to(state.device)
        out[OBS_LANGUAGE_ATTENTION_MASK] = tokens["attention_mask"].bool().to(state.device)
        return out

    def _prefix(self, inputs: dict[str, Any]) -> tuple[Any, ...]:
        from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

        images, img_masks = self.model.prepare_images(inputs)
        state = self.model.prepare_state(inputs)
        return (
            images,
            img_masks,
            inputs[OBS_LANGUAGE_TOKENS],
            inputs[OBS_LANGUAGE_ATTENTION_MASK],
            state,
        )

    # --- TrainablePolicy ---
    def loss(
        self, batch: TrainBatch | Mapping[str, Any], generator: torch.Generator
    ) -> torch.Tensor:
        """Per-sample flow loss (B,) over the supervised elements (action_valid, M^int)."""
        if not isinstance(batch, TrainBatch):
            batch = TrainBatch.build(batch, self.cfg, self.stats, next(self.parameters()).device)
        mask = batch.action_mask
        actions = self.stats[F.ACTION].normalize(batch.actions)
        actions = torch.where(mask.any(-1, keepdim=True), actions, torch.zeros_like(actions))
        inputs = self._inputs(batch.obs, batch.tasks)
        padded = self.model.prepare_action({ACTION: actions})
        noise = torch.randn(
            padded.shape, generator=generator, device=generator.device, dtype=padded.dtype
        ).to(padded.device)
        losses = self.model.model.forward(*self._prefix(inputs), padded, noise, None)
        losses = losses[:, :, : self.cfg.action_dim]  # (B, H, D): the padding dims dropped
        m = mask.to(losses.dtype)
        return (losses * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp_min(1.0)

    @torch.no_grad()
    def infer(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        device = next(self.parameters()).device
        prepared = prepare_obs(single_obs_batch(obs), F.OBS_PREFIX, self.cfg, self.stats, device)
        was_training = self.training
        self.eval()
        chunk = self.model.model.sample_actions(
            *self._prefix(self._inputs(prepared, (obs[F.TASK],)))
        )
        self.train(was_training)
        chunk = self.stats[F.ACTION].unnormalize(chunk[:, :, : self.cfg.action_dim])[0]
        return {ACTIONS_OUT: chunk.cpu().numpy().astype(np.float32)}


def export_pretrained(checkpoint: Path, out: Path) -> Path:
    """The actor of a LeRobot-actor checkpoint in LeRobot's own layout (config.json and
    model.safetensors, written by LeRobot's save_pretrained): what `<Policy>.from_pretrained`
    and LeRobot's tools load. Our statistics normalise its inputs: they go in habc_norm.json."""
    import json

    from habc_trainer.checkpoint import load_checkpoint, load_policy

    ckpt = load_checkpoint(checkpoint)
    if not ckpt.model_config.lerobot:
        raise ValueError(f"--checkpoint {checkpoint}: its actor is the flow actor, not LeRobot's")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out}: not empty")
    policy = load_policy(checkpoint)
    policy.model.save_pretrained(out)
    stats = {
        name: {stat: np.asarray(getattr(st, stat)).tolist() for stat in ("mean", "std")}
        for name, st in policy.stats.features.items()
    }
    (out / "habc_norm.json").write_text(
        json.dumps({"checkpoint": str(checkpoint), "model_index": ckpt.model_index, **stats})
    )
    return out


def main(argv: list[str] | None = None) -> int:
    from habc_core.cli import ArgumentParser, user_errors

    with user_errors("lerobot_policy"):
        p = ArgumentParser(prog="python -m habc_trainer.models.lerobot_policy")
        p.add_argument("--checkpoint", type=Path, required=True)
        p.add_argument("--out", type=Path, required=True)
        args = p.parse_args(argv)
        print(export_pretrained(args.checkpoint, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
