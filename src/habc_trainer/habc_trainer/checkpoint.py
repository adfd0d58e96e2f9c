"""Checkpoints: safetensors weights + optimiser state, YAML configs, JSON trainer state.

Layout of one checkpoint directory:

    model.safetensors    actor.* critic.* value.* norm.*  (weights + normalisation statistics)
    optim.safetensors    <opt>.<param idx>.<state key>    (AdamW moments and steps)
    trainer.json         counters, optimiser hyper-parameters, numpy RNG state per rank, recap eps
    rng.safetensors      torch generator state per rank (uint8)
    config.yaml          train config + model config
    manifest.json        the data the round trained on (written by train_round)
    config.json          the same configs and counters as JSON, for other tools (checkpoint_card)
    README.md            a short model card: round, method, actor, data, how to load it
    checksums.json       sha256 and size of every file above (written last)

No pickle anywhere: a checkpoint from an untrusted source cannot execute code. Every load checks
every file against checksums.json: a flipped bit, a truncated copy or a file swapped in is refused
with an error naming it, so a damaged checkpoint is never deployed. Version-1 checkpoints (from
before checksums.json) still load, unverified, with a one-line warning.

Writing is crash-safe: the files go to ``.<name>.new-*`` beside the target (each fsynced, mode
0644, the directory 0755), then the directory is renamed into place; an existing checkpoint of
that name is first renamed aside (``.<name>.old-*``) and removed only once the new one is in
place. A kill at any moment leaves a valid copy under one of those names:
:func:`recover_checkpoint` (train_round calls it at start) puts the newest valid one in place and
removes the rest, and :func:`load_checkpoint` reads the newest valid one meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save as save_tensors

from habc_core.fsio import fsync_dir, write_new_file
from habc_trainer.checkpoint_card import config_json, model_card
from habc_trainer.checkpoint_files import (
    CARD_FILE,
    CHECKPOINT_VERSION,
    CHECKSUMS_FILE,
    CONFIG_FILE,
    CONFIG_JSON_FILE,
    DIR_MODE,
    FILE_MODE,
    MANIFEST_FILE,
    MODEL_FILE,
    OPTIM_FILE,
    RNG_FILE,
    STATE_FILE,
    UNVERIFIED_VERSION,
    Checkpoint,
    CheckpointError,
    TrainerState,
    checksums_blob,
    model_config_from_dict,
    parse,
    read_files,
)
from habc_trainer.config import TrainConfig
from habc_trainer.models.policy import FlowPolicy, make_policy
from habc_trainer.normalize import NormStats
from habc_trainer.update import Learner, build_learner

# What importers take from here (the file layout and parsing live in checkpoint_files.py).
__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointWarning",
    "TrainerState",
    "discard_checkpoint",
    "load_checkpoint",
    "load_policy",
    "model_config_from_dict",
    "recover_checkpoint",
    "restore_learner",
    "save_checkpoint",
]

# Temp dir kinds beside a checkpoint: being written, moved aside for a newer one, discarded.
_NEW, _OLD, _DEL = "new", "old", "del"


class CheckpointWarning(UserWarning):
    """A checkpoint was loaded unverified (version 1) or from an interrupted write's copy."""


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


def _crash_point(point: str) -> None:
    """Nothing. Tests and faults/checkpoint_faults.py replace it to kill the process (or copy
    the disk) at ``point`` of a write: "wrote <file>", "files_written", "old_moved_aside",
    "new_in_place", "discarded"."""


def _make_dirs(directory: Path) -> None:
    """``mkdir -p``; the directories it creates get DIR_MODE whatever the umask, so the
    deploying user can walk down to the checkpoint."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(d, DIR_MODE)


def _temp_name(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{secrets.token_hex(4)}")


def _temp_dirs(path: Path) -> list[Path]:
    """Directories an interrupted write or removal of ``path`` left beside it."""
    if not path.parent.is_dir():
        return []
    ours = re.compile(rf"\.{re.escape(path.name)}\.(?:{_NEW}|{_OLD}|{_DEL})-[A-Za-z0-9_]+")
    # Version-1 writers used tempfile.mkdtemp(prefix=".<name>."): 8 random characters.
    legacy = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}")
    return sorted(
        p
        for p in path.parent.iterdir()
        if (ours.fullmatch(p.name) or legacy.fullmatch(p.name))
        and p.is_dir()
        and not p.is_symlink()
    )


def _kind(path: Path, temp: Path) -> str:
    rest = temp.name[len(path.name) + 2 :]
    return rest.split("-", 1)[0] if "-" in rest else "legacy"


def _newest_first(path: Path, temps: list[Path]) -> list[Path]:
    """Where a copy of ``path`` may be, newest first.

    A finished ``.new-`` copy (or a version-1 writer's temp dir) was written after whatever is
    at ``path``; an ``.old-`` copy was moved aside for a newer one. ``.del-`` copies were
    discarded on purpose and never come back.
    """

    def mtime(t: Path) -> int:
        try:
            return t.stat().st_mtime_ns
        except OSError:  # renamed or removed since it was listed
            return -1

    def newest(kind: str) -> list[Path]:
        found = [t for t in temps if _kind(path, t) == kind]
        return sorted(found, key=mtime, reverse=True)

    here = [path] if path.is_dir() else []
    return newest(_NEW) + newest("legacy") + here + newest(_OLD)


def _newest_valid(path: Path, temps: list[Path]) -> Path | None:
    for candidate in _newest_first(path, temps):
        try:
            parse(read_files(candidate))
        except (CheckpointError, OSError):  # damaged, incomplete, or gone meanwhile
            continue
        return candidate
    return None


def _swap_in(src: Path, dst: Path) -> None:
    """Rename the complete directory ``src`` to ``dst``; an existing ``dst`` is moved aside
    first and deleted only once ``src`` is in place, so a valid copy exists at every moment."""
    aside = None
    try:
        if dst.exists():
            aside = _temp_name(dst, _OLD)
            os.rename(dst, aside)
            fsync_dir(dst.parent)
            _crash_point("old_moved_aside")
        os.rename(src, dst)
        fsync_dir(dst.parent)
    except BaseException:
        if aside is not None and not dst.exists():
            os.rename(aside, dst)
        raise
    _crash_point("new_in_place")
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
        fsync_dir(dst.parent)


def recover_checkpoint(path: str | Path) -> str | None:
    """Finish what an interrupted write (or removal) of ``path`` left.

    The newest valid copy becomes ``path`` and every temp dir of ``path`` is removed; a damaged
    ``path`` with no valid copy beside it stays for :func:`load_checkpoint` to report. Returns
    what was done, None when there was nothing to do. The caller is the only writer of ``path``
    (train_round's rank 0): a write in progress elsewhere would be taken for an interrupted one.
    """
    path = Path(path)
    temps = _temp_dirs(path)
    if not temps:
        return None
    notes = []
    best = _newest_valid(path, [t for t in temps if _kind(path, t) != _DEL])
    if best is not None and best != path:
        _swap_in(best, path)
        notes.append(f"recovered {path} from an interrupted write ({best.name})")
    left = _temp_dirs(path)
    for t in left:
        shutil.rmtree(t, ignore_errors=True)
    fsync_dir(path.parent)
    if left:
        notes.append(f"removed {len(left)} stale temp dir(s) of {path.name}")
    return "; ".join(notes)


def discard_checkpoint(path: str | Path) -> None:
    """Delete a checkpoint directory (and its temp dirs) so nothing ever finds half of it: it
    is renamed to ``.<name>.del-*`` first, which no recovery brings back."""
    path = Path(path)
    if path.exists():
        gone = _temp_name(path, _DEL)
        os.rename(path, gone)
        fsync_dir(path.parent)
        _crash_point("discarded")
    for t in _temp_dirs(path):
        shutil.rmtree(t, ignore_errors=True)
    if path.parent.is_dir():
        fsync_dir(path.parent)


def save_checkpoint(
    path: str | Path,
    learner: Learner,
    cfg: TrainConfig,
    state: TrainerState,
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (replacing one of that name); returns its path.

    A kill at any point leaves the previous checkpoint or this one valid (module docstring).
    """
    path = Path(path)
    _make_dirs(path.parent)
    recover_checkpoint(path)  # an earlier interrupted write: its newest copy in place first
    opt_tensors, groups = _optim_tensors(learner)
    trainer = {
        "version": CHECKPOINT_VERSION,
        "round_index": state.round_index,
        "step_in_round": state.step_in_round,
        "model_index": state.model_index,
        "recap_epsilon": state.recap_epsilon,
        "np_rng_states": state.np_rng_states,
        "param_groups": groups,
    }
    configs = {"train": cfg.to_dict(), "model": dataclasses.asdict(learner.policy.cfg)}
    model_cfg = learner.policy.cfg
    blobs = {
        MODEL_FILE: save_tensors(_model_tensors(learner)),
        OPTIM_FILE: save_tensors(opt_tensors),
        RNG_FILE: save_tensors(
            {f"torch.rank{r}": t for r, t in enumerate(state.torch_rng_states)}
        ),
        STATE_FILE: json.dumps(trainer, indent=1).encode(),
        CONFIG_FILE: yaml.safe_dump(configs, sort_keys=False).encode(),
        MANIFEST_FILE: json.dumps(manifest or {}, indent=1).encode(),
        CONFIG_JSON_FILE: config_json(cfg, model_cfg, trainer, CHECKPOINT_VERSION),
        CARD_FILE: model_card(cfg, model_cfg, trainer, manifest or {}),
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_NEW}-", dir=path.parent))
    try:
        os.chmod(tmp, DIR_MODE)  # mkdtemp makes it 0700
        for name, blob in blobs.items():
            write_new_file(tmp / name, blob, FILE_MODE)
            _crash_point(f"wrote {name}")
        # Last: a directory whose checksums.json matches its files is complete.
        write_new_file(tmp / CHECKSUMS_FILE, checksums_blob(blobs), FILE_MODE)
        fsync_dir(tmp)
        _crash_point("files_written")
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint at ``path``, every file checked against its sha256.

    Raises CheckpointError naming the file when one is damaged, missing or not part of the
    checkpoint. When a write of ``path`` was interrupted (temp dirs beside it), the newest
    valid copy is read, with a warning; :func:`recover_checkpoint` puts it in place.
    """
    path = Path(path)
    source = path
    temps = _temp_dirs(path)
    if temps:
        source = _newest_valid(path, [t for t in temps if _kind(path, t) != _DEL]) or path
        if source != path:
            warnings.warn(
                f"{path}: a write was interrupted; reading its newest valid copy {source.name}",
                CheckpointWarning,
                stacklevel=2,
            )
    files = read_files(source)
    if not files.verified:
        warnings.warn(
            f"{path}: version-{UNVERIFIED_VERSION} checkpoint without "
            f"{CHECKSUMS_FILE}, loaded unverified (checkpoints written now carry "
            "sha256 checksums)",
            CheckpointWarning,
            stacklevel=2,
        )
    return parse(files)


def _load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    sd = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    module.load_state_dict(sd, strict=True)


def _load_optimizer(
    opt: torch.optim.Optimizer,
    name: str,
    tensors: dict[str, torch.Tensor],
    groups: list[dict[str, Any]],
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        opt_name, idx, k = key.split(".", 2)
        if opt_name == name:
            state.setdefault(int(idx), {})[k] = v
    for g in groups:  # JSON turned tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def restore_learner(
    ckpt: Checkpoint,
    cfg: TrainConfig,
    *,
    stats: NormStats | None = None,
    with_optimizers: bool = True,
) -> Learner:
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
                group["lr"] = {
                    "actor": cfg.lr_actor,
                    "critic": cfg.lr_critic,
                    "value": cfg.lr_value,
                }[name]
    learner.model_index = ckpt.model_index
    return learner


def load_policy(path: str | Path, device: str = "cpu") -> FlowPolicy:
    """The deployable actor (with its normalisation statistics) from a checkpoint directory."""
    ckpt = load_checkpoint(path)
    policy = make_policy(ckpt.model_config, ckpt.stats)
    _load_module(policy.model, ckpt.model, "actor")
    policy.model_index = ckpt.model_index  # stamped on the rollouts this policy produces
    return policy.to(device).eval()
