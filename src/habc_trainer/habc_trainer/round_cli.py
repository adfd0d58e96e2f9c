"""train_round's command line: the parser and what it does before a round (convert, open, warn)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from habc_core.cli import ArgumentParser, non_negative_int
from habc_trainer.config import TrainConfig
from habc_trainer.round_state import PROG, RESTART_FLAG, round_dir
from habc_trainer.streams import SampleStreams, open_streams

DESCRIPTION = "one HABC training round, resumable"


def round_argv(
    config: Path,
    data_root: Path,
    ckpt_root: Path,
    round_index: int,
    method: str | None = None,
    overrides: Mapping[str, object] | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """train_round's command line for one round without a progress bar: what the scripts and
    tests that drive ``main`` pass it (``overrides`` become ``--set key=value``)."""
    argv = ["--config", str(config), "--data-root", str(data_root), "--ckpt-root", str(ckpt_root)]
    argv += ["--round", str(round_index), "--no-progress"]
    if method is not None:
        argv += ["--method", method]
    if overrides:
        argv += ["--set", *(f"{k}={v}" for k, v in overrides.items())]
    return argv + list(extra)


def default_init(ckpt_root: Path, method: str, round_index: int) -> Path | None:
    """Round N starts from round N-1 of the same method; round 1 from the SFT checkpoint."""
    if round_index == 0:
        return None
    prev = round_dir(ckpt_root, method, round_index - 1)
    if round_index == 1 and not prev.is_dir():
        prev = round_dir(ckpt_root, "sft", 0)
    if not prev.is_dir():
        raise FileNotFoundError(
            f"round {round_index} starts from {prev}, which does not exist; "
            f"train round {round_index - 1} first or pass --init"
        )
    return prev


def convert_bags(data_root: Path, store: Path, cfg: TrainConfig, progress: bool) -> str:
    """Convert new or changed bags under ``data_root`` into the store.

    The store keeps the cameras and resolution the model consumes (none in state mode).
    """
    from habc_trainer.convert import convert  # the data path; imported only when used
    from habc_trainer.episode import ExtractConfig  # the bag reader: only when converting

    model = cfg.model_config()
    extract = ExtractConfig(cameras=tuple(model.cameras), image_size=model.image_size)
    summary = convert([data_root], store, extract, progress=progress, workers=cfg.convert_workers)
    return summary.format()


def open_store(store: Path, round_index: int, cfg: TrainConfig) -> SampleStreams:
    """The replay buffer of every round <= round_index (the store's window streams)."""
    if not store.is_dir():
        raise FileNotFoundError(f"episode store {store} does not exist; convert bags first")
    return open_streams(store, round_index, cfg)


def t_max_warning(streams: Any, cfg: TrainConfig) -> str | None:
    """A warning when stored episodes allow more steps than ``t_max`` (V_e would saturate)."""
    episodes = getattr(getattr(streams, "store", None), "episodes", None) or []
    longest = max((int(e.get("t_max_steps", 0)) for e in episodes), default=0)
    if longest > cfg.t_max:
        return (
            f"train_round: warning: episodes allow up to {longest} steps but t_max is "
            f"{cfg.t_max:g}; V_e is clamped to [-t_max, 0] (set t_max: {longest})"
        )
    return None


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=DESCRIPTION)
    p.add_argument("--config", type=Path, help="training YAML (TrainConfig keys)")
    p.add_argument(
        "--data-root",
        type=Path,
        required=True,
        help="directory searched for episode bags (<task>/round_NNN/<episode>/)",
    )
    p.add_argument(
        "--store", type=Path, help="episode store directory (default: <data-root>/store)"
    )
    p.add_argument(
        "--no-convert",
        action="store_true",
        help="train on the store as it is, without converting new bags",
    )
    p.add_argument("--ckpt-root", type=Path, required=True, help="checkpoint root")
    p.add_argument(
        "--round",
        type=non_negative_int,
        required=True,
        dest="round_index",
        help="round N (0 = the SFT round)",
    )
    p.add_argument("--method", help="override the config's method")
    p.add_argument("--init", type=Path, help="checkpoint to start from (default: round N-1)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. --set steps_per_round=200 seed=1",
    )
    p.add_argument("--log-dir", type=Path, help="TensorBoard dir (default: <ckpt-root>/tb)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        RESTART_FLAG,
        action="store_true",
        help="discard round N's partial checkpoint and train the round from its "
        "start (needed when the data changed since it was written)",
    )
    return p
