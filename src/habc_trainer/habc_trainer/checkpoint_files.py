"""The files of one checkpoint directory: their names, their checksums, reading and checking
them, and parsing them into a `Checkpoint` (the layout is in checkpoint.py's docstring).

No pickle anywhere: safetensors, JSON and YAML only, so a checkpoint from an untrusted source
cannot execute code. `read_files` checks every file against checksums.json: a flipped bit, a
truncated copy or a file swapped in is refused with an error naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors

from habc_trainer.config import TrainConfig
from habc_trainer.models.config import ModelConfig
from habc_trainer.normalize import NormStats

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optim.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "trainer.json"
CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
CONFIG_JSON_FILE = "config.json"  # the configs and counters as JSON (checkpoint_card)
CARD_FILE = "README.md"  # a short model card (checkpoint_card)
CHECKSUMS_FILE = "checksums.json"
CHECKSUMS_FORMAT = "habc-checkpoint-checksums"
# 2: checksums.json; 1: none (loads unverified, with a warning).
CHECKPOINT_VERSION = 2
UNVERIFIED_VERSION = 1
REQUIRED_FILES = (MODEL_FILE, OPTIM_FILE, RNG_FILE, STATE_FILE, CONFIG_FILE)
# Every file a finished checkpoint holds (the manifest is written by train_round).
ALL_FILES = (*REQUIRED_FILES, MANIFEST_FILE, CONFIG_JSON_FILE, CARD_FILE, CHECKSUMS_FILE)
# The policy node deploys as another user than the trainer: a checkpoint is world-readable
# whatever the trainer's umask (it holds weights, no secrets), and writable by its owner only.
FILE_MODE = 0o644
DIR_MODE = 0o755


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing files, holds a damaged file or has another layout."""


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


def _digest_of(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def checksums_blob(blobs: dict[str, bytes]) -> bytes:
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
class Files:
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


def read_files(path: Path) -> Files:
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
    return Files(path, blobs, verified=True)


def _read_unverified(path: Path) -> Files:
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: missing {name}; not a habc_trainer checkpoint")
    names = REQUIRED_FILES + ((MANIFEST_FILE,) if (path / MANIFEST_FILE).is_file() else ())
    files = Files(path, {n: (path / n).read_bytes() for n in names}, verified=False)
    version = _json(files, STATE_FILE).get("version")
    if version != UNVERIFIED_VERSION:  # only version 1 was written without checksums
        raise CheckpointError(
            f"{path / CHECKSUMS_FILE}: missing; a version-{version!r} "
            "checkpoint cannot be verified without it"
        )
    return files


def _json(files: Files, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(files.blobs[name])
    except ValueError as exc:
        raise CheckpointError(f"{files.path / name}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(
            f"{files.path / name}: expected a JSON object, got {type(doc).__name__}"
        )
    return doc


def _tensors(files: Files, name: str) -> dict[str, torch.Tensor]:
    # safetensors parses a header and raw arrays only: a pickle named *.safetensors fails
    # here without ever being executed.
    try:
        return load_tensors(files.blobs[name])
    except SafetensorError as exc:
        raise CheckpointError(f"{files.path / name}: not a safetensors file ({exc})") from None


def parse(files: Files) -> Checkpoint:
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
