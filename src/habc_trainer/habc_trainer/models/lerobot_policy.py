"""A LeRobot VLA as the HABC actor: ``TrainablePolicy`` around SmolVLA, pi0 or pi0.5.

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
are left out. LeRobot's own ``forward(reduction="none")`` only knows padded steps. The noise and
the flow time come from the trainer's generator (LeRobot's Beta(alpha, beta) * scale + offset).

Supported: ``smolvla``, ``pi0``, ``pi05``; one inner call, ``forward(images, img_masks, tokens,
token_masks, [state,] actions, noise, time)``, as each policy's own ``forward`` makes it:

- smolvla and pi0 take the padded state as an argument (images: ``prepare_images`` /
  ``_preprocess_images``); their prompt ends with the newline LeRobot's processors add;
- pi0.5 takes no state argument: as its ``Pi05PrepareStateTokenizerProcessorStep`` does, the
  state in [-1, 1] goes into the prompt in 256 bins, ``"Task: <task>, State: <bins>;\nAction: "``.
  LeRobot maps the state to [-1, 1] with its quantile statistics; ours have min / max, so the
  state is min-max scaled (LeRobot's MIN_MAX mode) and clipped.

The tokenizer: ``<policy dir>/tokenizer`` when there is one (the tiny configs write theirs
there; a copy of PaliGemma's runs a real pi0 offline), else the VLM's (smolvla) or PaliGemma's
(pi0, pi05: ``google/paligemma-3b-pt-224``, as LeRobot's processors load it). A directory with
``habc_tiny.json`` is a tiny random-init pi0 / pi0.5 from ``lerobot_tiny`` and is built inside
``lerobot_tiny.tiny_pi_build``; every other directory is built by LeRobot as it stands.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from habc_core import features as F
from habc_core.policy import ACTIONS_OUT
from habc_trainer.flow_matching import SIGMA_MIN, sample_time
from habc_trainer.models.batch import TrainBatch
from habc_trainer.models.config import ModelConfig
from habc_trainer.models.inputs import prepare_obs, single_obs_batch
from habc_trainer.models.lerobot_tiny import TINY_SPEC, tiny_pi_build
from habc_trainer.normalize import NormStats

SUPPORTED = ("smolvla", "pi0", "pi05")
STATE = "observation.state"
IMAGE_PREFIX = "observation.images."
ACTION = "action"
# A tokenizer saved beside a policy's config.json is used before the hub's.
TOKENIZER_DIR = "tokenizer"
PALIGEMMA_TOKENIZER = "google/paligemma-3b-pt-224"  # LeRobot's pi0 / pi0.5 processors
# pi0.5's prompt holds the state in [-1, 1] as bins (LeRobot's processor_pi05, after openpi).
PI05_STATE_BINS = 256


def load_lerobot_config(cfg: ModelConfig) -> Any:
    """The LeRobot policy config in ``cfg.lerobot``, its features set from our data dims."""
    import lerobot.policies  # noqa: F401  (registers the policy types' configs)
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
    if getattr(lr, "use_relative_actions", False):
        raise ValueError(
            "lerobot: use_relative_actions is a LeRobot processor step this adapter does not "
            "run; set it false in config.json"
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
        self.kind = lr.type
        path = Path(cfg.lerobot)
        policy_cls = get_policy_class(lr.type)
        tiny = path / TINY_SPEC
        with tiny_pi_build(tiny) if tiny.is_file() else contextlib.nullcontext():
            if (path / "model.safetensors").is_file():
                self.model = policy_cls.from_pretrained(cfg.lerobot, config=lr)
            else:
                self.model = policy_cls(lr)
        self.lerobot_config = lr
        if (path / TOKENIZER_DIR).is_dir():
            tokenizer = str(path / TOKENIZER_DIR)
        else:
            tokenizer = lr.vlm_model_name if lr.type == "smolvla" else PALIGEMMA_TOKENIZER
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer)

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
            self._prompts(tasks, state),
            padding="max_length",
            padding_side="right",
            truncation=True,
            max_length=self.lerobot_config.tokenizer_max_length,
            return_tensors="pt",
        )
        out[OBS_LANGUAGE_TOKENS] = tokens["input_ids"].to(state.device)
        out[OBS_LANGUAGE_ATTENTION_MASK] = tokens["attention_mask"].bool().to(state.device)
        return out

    def _prompts(self, tasks: tuple[str, ...], state: torch.Tensor) -> list[str]:
        """The prompts as LeRobot's processors leave them; state (B, P) normalised."""
        if self.kind != "pi05":
            return [t if t.endswith("\n") else t + "\n" for t in tasks]  # their NewLine step
        st = self.stats[F.PROPRIO]
        lo, hi = (torch.as_tensor(x, device=state.device) for x in (st.min, st.max))
        span = hi - lo
        # min -> -1, max -> 1; a dim that never moved sits at -1, as in LeRobot's normaliser.
        unit = torch.where(
            span > 0, 2.0 * (st.unnormalize(state) - lo) / span.clamp_min(1e-12) - 1.0, -1.0
        )
        edges = np.linspace(-1.0, 1.0, PI05_STATE_BINS + 1)[:-1]
        bins = np.digitize(unit.clamp(-1.0, 1.0).cpu().numpy(), bins=edges) - 1
        prompts = []
        for task, b in zip(tasks, bins, strict=True):
            cleaned = task.strip().replace("_", " ").replace("\n", " ")
            prompts.append(f"Task: {cleaned}, State: {' '.join(map(str, b))};\nAction: ")
        return prompts

    def _prefix(self, inputs: dict[str, Any]) -> tuple[Any, ...]:
        """The inner call's leading arguments, as the policy's own ``forward`` makes them."""
        from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

        if self.kind == "smolvla":
            images, img_masks = self.model.prepare_images(inputs)
        else:
            images, img_masks = self.model._preprocess_images(inputs)
        tokens = (inputs[OBS_LANGUAGE_TOKENS], inputs[OBS_LANGUAGE_ATTENTION_MASK])
        if self.kind == "pi05":
            return (images, img_masks, *tokens)  # the state is in the prompt
        return (images, img_masks, *tokens, self.model.prepare_state(inputs))

    def _flow_time(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(B,) LeRobot's flow time, Beta(alpha, beta) * scale + offset, from our generator."""
        lr = self.lerobot_config
        if self.kind == "smolvla":  # fixed in VLAFlowMatching.sample_time
            alpha, beta, scale, offset = 1.5, 1.0, 0.999, 0.001
        else:
            alpha, beta = lr.time_sampling_beta_alpha, lr.time_sampling_beta_beta
            scale, offset = lr.time_sampling_scale, lr.time_sampling_offset
        s = (sample_time(batch, generator, alpha, beta) - SIGMA_MIN) / (1.0 - SIGMA_MIN)
        return s * scale + offset

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
        time = self._flow_time(padded.shape[0], generator).to(padded.device)
        losses = self.model.model.forward(*self._prefix(inputs), padded, noise, time)
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
    and LeRobot's tools load. Our statistics normalise its inputs: they go in habc_norm.json;
    a tokenizer/ and a tiny pi's habc_tiny.json beside the source config go along."""
    import json

    from habc_trainer.checkpoint import load_checkpoint, load_policy

    ckpt = load_checkpoint(checkpoint)
    if not ckpt.model_config.lerobot:
        raise ValueError(f"--checkpoint {checkpoint}: its actor is the flow actor, not LeRobot's")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out}: not empty")
    policy = load_policy(checkpoint)
    policy.model.save_pretrained(out)
    source = Path(ckpt.model_config.lerobot)
    if (source / TOKENIZER_DIR).is_dir():
        shutil.copytree(source / TOKENIZER_DIR, out / TOKENIZER_DIR)
    if (source / TINY_SPEC).is_file():
        shutil.copy2(source / TINY_SPEC, out / TINY_SPEC)
    stats = {
        name: {
            stat: np.asarray(getattr(st, stat)).tolist() for stat in ("mean", "std", "min", "max")
        }
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
