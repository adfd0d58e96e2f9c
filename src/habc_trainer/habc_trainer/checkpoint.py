"""Checkpoints: safetensors weights + optimiser state, YAML configs, JSON trainer state.

Layout of one checkpoint directory (written to a temp dir, then renamed: never half-written):

    model.safetensors    actor.* critic.* value.* norm.*  (weights + normalisation statistics)
    optim.safetensors    <opt>.<param idx>.<state key>    (AdamW moments and steps)
    trainer.json         counters, optimiser hyper-parameters, numpy RNG state per rank, recap eps
    rng.safetensors      torch generator state per rank (uint8)
    config.yaml          train config + model config
    manifest.json        the data the round trained on (written by train_round)

No pickle anywhere: a checkpoint from an untrusted source cannot execute code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from habc_trainer.config import TrainConfig
from habc_trainer.models.config import ModelConfig
from habc_trainer.models.policy import FlowPolicy
from habc_trainer.normalize import NormStats
from habc_trainer.update import Learner, build_learner

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optim.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "trainer.json"
CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing files or does not match the expected layout."""


@dataclass
class TrainerState:
    """Where training stands; enough to resume bit-for-bit."""

    round_index: int = 0
    step_in_round: int = 0
    model_index: int = 0
    recap_epsilon: float = 0.0
    # One entry per rank (index = rank; a single process has one): the data-sampling numpy
    # Generator.bit_generator.state and the noise torch.Generator.get_state().
    np_rng_states: list[dict] = dataclasses.field(default_factory=list)
    torch_rng_states: list[torch.Tensor] = dataclasses.field(default_factory=list)


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    d = dict(d)
    for key in ("cameras", "conv_channels"):
        d[key] = tuple(d[key])
    # Checkpoints from before the key existed were trained with iid flow noise.
    d.setdefault("noise_length_scale", 0.0)
    d.setdefault("action_basis", 0)
    return ModelConfig(**d)


def _model_tensors(learner: Learner) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in learner.modules().items():
        for k, v in module.state_dict().items():
            out[f"{name}.{k}"] = v.detach().cpu().contiguous()
    out.update(learner.policy.stats.to_tensors())
    return out


def _optim_tensors(learner: Learner) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, groups = {}, {}
    for name, opt in learner.optimizers().items():
        sd = opt.state_dict()
        for idx, st in sd["state"].items():
            for k, v in st.items():
                tensors[f"{name}.{idx}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
        groups[name] = sd["param_groups"]
    return tensors, groups


def save_checkpoint(path: str | Path, learner: Learner, cfg: TrainConfig, state: TrainerState,
                    manifest: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint directory atomically; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_file(_model_tensors(learner), tmp / MODEL_FILE)
        opt_tensors, groups = _optim_tensors(learner)
        save_file(opt_tensors, tmp / OPTIM_FILE)
        rng = {f"torch.rank{r}": t for r, t in enumerate(state.torch_rng_states)}
        save_file(rng, tmp / RNG_FILE)
        trainer = {
            "version": CHECKPOINT_VERSION,
            "round_index": state.round_index,
            "step_in_round": state.step_in_round,
            "model_index": state.model_index,
            "recap_epsilon": state.recap_epsilon,
            "np_rng_states": state.np_rng_states,
            "param_groups": groups,
        }
        (tmp / STATE_FILE).write_text(json.dumps(trainer, indent=1))
        configs = {"train": cfg.to_dict(), "model": dataclasses.asdict(learner.policy.cfg)}
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(configs, sort_keys=False))
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest or {}, indent=1))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


@dataclass
class Checkpoint:
    """A loaded checkpoint (all tensors on CPU)."""

    path: Path
    train_config: TrainConfig
    model_config: ModelConfig
    stats: NormStats
    model: dict[str, torch.Tensor]
    optim: dict[str, torch.Tensor]
    trainer: dict[str, Any]
    torch_rng_states: list[torch.Tensor]
    manifest: dict[str, Any]

    @property
    def model_index(self) -> int:
        return int(self.trainer["model_index"])

    def trainer_state(self) -> TrainerState:
        t = self.trainer
        return TrainerState(t["round_index"], t["step_in_round"], t["model_index"],
                            t["recap_epsilon"], t["np_rng_states"], self.torch_rng_states)


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    for name in (MODEL_FILE, OPTIM_FILE, RNG_FILE, STATE_FILE, CONFIG_FILE):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: missing {name}; not a habc_trainer checkpoint")
    trainer = json.loads((path / STATE_FILE).read_text())
    if trainer.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {trainer.get('version')!r}, "
                              f"this trainer reads {CHECKPOINT_VERSION}")
    configs = yaml.safe_load((path / CONFIG_FILE).read_text())
    model = load_file(path / MODEL_FILE)
    rng = load_file(path / RNG_FILE)
    manifest_path = path / MANIFEST_FILE
    return Checkpoint(
        path=path,
        train_config=TrainConfig.from_dict(configs["train"]),
        model_config=model_config_from_dict(configs["model"]),
        stats=NormStats.from_tensors(model),
        model=model,
        optim=load_file(path / OPTIM_FILE),
        trainer=trainer,
        torch_rng_states=[rng[f"torch.rank{r}"] for r in range(len(rng))],
        manifest=json.loads(manifest_path.read_text()) if manifest_path.is_file() else {},
    )


def _load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    sd = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    module.load_state_dict(sd, strict=True)


def _load_optimizer(opt: torch.optim.Optimizer, name: str, tensors: dict[str, torch.Tensor],
                    groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        opt_name, idx, k = key.split(".", 2)
        if opt_name == name:
            state.setdefault(int(idx), {})[k] = v
    for g in groups:  # JSON turned tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def restore_learner(ckpt: Checkpoint, cfg: TrainConfig, *, stats: NormStats | None = None,
                    with_optimizers: bool = True) -> Learner:
    """Networks (and optimiser state) from ``ckpt``, trained further under ``cfg``.

    ``stats``: normalisation statistics to use from now on (a new round recomputes them from the
    grown store); default: the checkpoint's own.
    """
    learner = build_learner(cfg, ckpt.model_config, stats or ckpt.stats)
    for name, module in learner.modules().items():
        _load_module(module, ckpt.model, name)
    if with_optimizers:
        for name, opt in learner.optimizers().items():
            _load_optimizer(opt, name, ckpt.optim, ckpt.trainer["param_groups"][name])
            for group in opt.param_groups:  # the new config's learning rate wins
                group["lr"] = {"actor": cfg.lr_actor, "critic": cfg.lr_critic,
                               "value": cfg.lr_value}[name]
    learner.model_index = ckpt.model_index
    return learner


def load_policy(path: str | Path, device: str = "cpu") -> FlowPolicy:
    """The deployable actor (with its normalisation statistics) from a checkpoint directory."""
    ckpt = load_checkpoint(path)
    policy = FlowPolicy(ckpt.model_config, ckpt.stats)
    _load_module(policy.model, ckpt.model, "actor")
    policy.model_index = ckpt.model_index  # stamped on the rollouts this policy produces
    return policy.to(device).eval()
