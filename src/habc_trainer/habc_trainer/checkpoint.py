"""Checkpoints: safetensors weights + optimiser state, YAML configs, JSON trainer state.

Layout of one checkpoint directory:

    model.safetensors    actor.* critic.* value.* norm.*  (weights + normalisation statistics)
    optim.safetensors    <opt>.<param idx>.<state key>    (AdamW moments and steps)
    trainer.json         counters, optimiser hyper-parameters, numpy RNG state per rank, recap eps
    rng.safetensors      torch generator state per rank (uint8)
    config.yaml          train config + model config
    manifest.json        the data the round trained on (written by train_round)
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
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from habc_core.contract import fsync_dir
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
CHECKSUMS_FILE = "checksums.json"
CHECKSUMS_FORMAT = "habc-checkpoint-checksums"
# 2: checksums.json; 1: none (loads unverified, with a warning).
CHECKPOINT_VERSION = 2
UNVERIFIED_VERSION = 1
REQUIRED_FILES = (MODEL_FILE, OPTIM_FILE, RNG_FILE, STATE_FILE, CONFIG_FILE)
# The policy node deploys as another user than the trainer: a checkpoint is world-readable
# whatever the trainer's umask (it holds weights, no secrets), and writable by its owner only.
FILE_MODE = 0o644
DIR_MODE = 0o755

# Temp dir kinds beside a checkpoint: being written, moved aside for a newer one, discarded.
_NEW, _OLD, _DEL = "new", "old", "del"


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing files, holds a damaged file or has another layout."""


class CheckpointWarning(UserWarning):
    """A checkpoint was loaded unverified (version 1) or from an interrupted write's copy."""


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


def _write_file(path: Path, blob: bytes) -> None:
    with open(path, "xb") as fh:
        os.fchmod(fh.fileno(), FILE_MODE)  # not the umask's: another user deploys it
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())


def _digest_of(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _checksums(blobs: dict[str, bytes]) -> bytes:
    doc: dict[str, Any] = {
        "format": CHECKSUMS_FORMAT,
        "version": CHECKPOINT_VERSION,
        "files": {
            name: {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
            for name, blob in sorted(blobs.items())
        },
    }
    # Its own digest: a damaged checksums.json is named as such, not blamed on another file.
    doc["sha256"] = _digest_of(doc)
    return json.dumps(doc, indent=1).encode()


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
            _parse(_read_files(candidate))
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
    blobs = {
        MODEL_FILE: save_tensors(_model_tensors(learner)),
        OPTIM_FILE: save_tensors(opt_tensors),
        RNG_FILE: save_tensors(
            {f"torch.rank{r}": t for r, t in enumerate(state.torch_rng_states)}
        ),
        STATE_FILE: json.dumps(trainer, indent=1).encode(),
        CONFIG_FILE: yaml.safe_dump(configs, sort_keys=False).encode(),
        MANIFEST_FILE: json.dumps(manifest or {}, indent=1).encode(),
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_NEW}-", dir=path.parent))
    try:
        os.chmod(tmp, DIR_MODE)  # mkdtemp makes it 0700
        for name, blob in blobs.items():
            _write_file(tmp / name, blob)
            _crash_point(f"wrote {name}")
        # Last: a directory whose checksums.json matches its files is complete.
        _write_file(tmp / CHECKSUMS_FILE, _checksums(blobs))
        fsync_dir(tmp)
        _crash_point("files_written")
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


@dataclass(frozen=True)
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
    verified: bool = True  # False: a version-1 checkpoint, read without checksums

    @property
    def model_index(self) -> int:
        return int(self.trainer["model_index"])

    def trainer_state(self) -> TrainerState:
        t = self.trainer
        return TrainerState(
            t["round_index"],
            t["step_in_round"],
            t["model_index"],
            t["recap_epsilon"],
            t["np_rng_states"],
            self.torch_rng_states,
        )


@dataclass(frozen=True)
class _Files:
    """The bytes of a checkpoint's files, read once (and checked, when ``verified``)."""

    path: Path
    blobs: dict[str, bytes]
    verified: bool


_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _read_checksums(path: Path) -> dict[str, dict[str, Any]]:
    where = path / CHECKSUMS_FILE
    try:
        doc = json.loads(where.read_bytes())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise CheckpointError(
            f"{where}: damaged ({exc}); the checkpoint cannot be verified and must not be deployed"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKSUMS_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{where}: format {got!r}, expected {CHECKSUMS_FORMAT!r}")
    if doc.get("sha256") != _digest_of(doc):
        raise CheckpointError(
            f"{where}: damaged (its own sha256 does not match); the "
            "checkpoint cannot be verified and must not be deployed"
        )
    files = doc.get("files")
    ok = isinstance(files, dict) and all(
        isinstance(n, str)
        and _SAFE_NAME.fullmatch(n)
        and isinstance(e, dict)
        and isinstance(e.get("sha256"), str)
        and isinstance(e.get("bytes"), int)
        for n, e in files.items()
    )
    if not ok:
        raise CheckpointError(f"{where}: 'files' is not a map of file name -> sha256 and bytes")
    return files


def _read_files(path: Path) -> _Files:
    """Every file of the checkpoint at ``path``, checked against checksums.json."""
    if not path.is_dir():
        raise CheckpointError(f"{path}: no checkpoint here (not a directory)")
    if not (path / CHECKSUMS_FILE).is_file():
        return _read_unverified(path)
    listed = _read_checksums(path)
    present = {p.name for p in path.iterdir()} - {CHECKSUMS_FILE}
    extra = sorted(present - listed.keys())
    if extra:
        raise CheckpointError(
            f"{path / extra[0]}: not listed in {CHECKSUMS_FILE} (a "
            f"checkpoint holds exactly {sorted(listed)}); remove it"
        )
    missing = [n for n in REQUIRED_FILES if n not in listed] + sorted(listed.keys() - present)
    if missing:
        raise CheckpointError(
            f"{path / missing[0]}: missing; not a complete habc_trainer checkpoint"
        )
    blobs = {}
    for name, entry in sorted(listed.items()):
        blob = (path / name).read_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != entry["sha256"]:
            size = (
                ""
                if len(blob) == entry["bytes"]
                else f", {len(blob)} bytes instead of {entry['bytes']}"
            )
            raise CheckpointError(
                f"{path / name}: damaged or replaced (sha256 {digest[:12]}... but "
                f"{CHECKSUMS_FILE} says {entry['sha256'][:12]}...{size}); do not deploy this "
                "checkpoint"
            )
        blobs[name] = blob
    return _Files(path, blobs, verified=True)


def _read_unverified(path: Path) -> _Files:
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: missing {name}; not a habc_trainer checkpoint")
    names = REQUIRED_FILES + ((MANIFEST_FILE,) if (path / MANIFEST_FILE).is_file() else ())
    files = _Files(path, {n: (path / n).read_bytes() for n in names}, verified=False)
    version = _json(files, STATE_FILE).get("version")
    if version != UNVERIFIED_VERSION:  # only version 1 was written without checksums
        raise CheckpointError(
            f"{path / CHECKSUMS_FILE}: missing; a version-{version!r} "
            "checkpoint cannot be verified without it"
        )
    return files


def _json(files: _Files, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(files.blobs[name])
    except ValueError as exc:
        raise CheckpointError(f"{files.path / name}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(
            f"{files.path / name}: expected a JSON object, got {type(doc).__name__}"
        )
    return doc


def _tensors(files: _Files, name: str) -> dict[str, torch.Tensor]:
    # safetensors parses a header and raw arrays only: a pickle named *.safetensors fails
    # here without ever being executed.
    try:
        return load_tensors(files.blobs[name])
    except SafetensorError as exc:
        raise CheckpointError(f"{files.path / name}: not a safetensors file ({exc})") from None


def _parse(files: _Files) -> Checkpoint:
    path = files.path
    trainer = _json(files, STATE_FILE)
    if trainer.get("version") not in (UNVERIFIED_VERSION, CHECKPOINT_VERSION):
        raise CheckpointError(
            f"{path / STATE_FILE}: checkpoint version "
            f"{trainer.get('version')!r}, this trainer reads "
            f"{UNVERIFIED_VERSION} and {CHECKPOINT_VERSION}"
        )
    try:
        configs = yaml.safe_load(files.blobs[CONFIG_FILE].decode("utf-8"))
        train_config = TrainConfig.from_dict(configs["train"])
        model_config = model_config_from_dict(configs["model"])
    except (ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        raise CheckpointError(f"{path / CONFIG_FILE}: {' '.join(str(exc).split())}") from None
    model = _tensors(files, MODEL_FILE)
    rng = _tensors(files, RNG_FILE)
    try:
        stats = NormStats.from_tensors(model)
        torch_rng_states = [rng[f"torch.rank{r}"] for r in range(len(rng))]
    except KeyError as exc:
        raise CheckpointError(f"{path}: tensor {exc} missing from the checkpoint") from None
    return Checkpoint(
        path=path,
        train_config=train_config,
        model_config=model_config,
        stats=stats,
        model=model,
        optim=_tensors(files, OPTIM_FILE),
        trainer=trainer,
        torch_rng_states=torch_rng_states,
        manifest=_json(files, MANIFEST_FILE) if MANIFEST_FILE in files.blobs else {},
        verified=files.verified,
    )


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
    files = _read_files(source)
    if not files.verified:
        warnings.warn(
            f"{path}: version-{UNVERIFIED_VERSION} checkpoint without "
            f"{CHECKSUMS_FILE}, loaded unverified (checkpoints written now carry "
            "sha256 checksums)",
            CheckpointWarning,
            stacklevel=2,
        )
    return _parse(files)


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
    policy = FlowPolicy(ckpt.model_config, ckpt.stats)
    _load_module(policy.model, ckpt.model, "actor")
    policy.model_index = ckpt.model_index  # stamped on the rollouts this policy produces
    return policy.to(device).eval()
