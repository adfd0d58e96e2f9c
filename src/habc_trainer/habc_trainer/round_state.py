"""Where a round starts and what it leaves: its directories, RNGs, resume check and checkpoints.

A round resumes its partial checkpoint only when that reproduces the uninterrupted run: same
config (the free keys aside), same data, same number of ranks; otherwise ResumeRefused names
RESTART_FLAG. The partial holds every rank's RNG state, so a resumed run draws what the killed
one would have.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from habc_core.cli import UserError, one_line
from habc_trainer.checkpoint import (
    Checkpoint,
    CheckpointError,
    TrainerState,
    discard_checkpoint,
    load_checkpoint,
    recover_checkpoint,
    restore_learner,
    save_checkpoint,
)
from habc_trainer.config import TrainConfig
from habc_trainer.distributed import Dist
from habc_trainer.streams import SampleStreams
from habc_trainer.update import Learner, build_learner

PROG = "train_round"
RESTART_FLAG = "--restart-round"
# Keys of SampleStreams.manifest() that may change without changing what a round trains on:
# where the store lives, and its revision (bumped by bags of later rounds or eval episodes,
# which this round's replay buffer does not include).
_DATA_FREE_KEYS = ("store", "store_revision")


class ResumeRefused(UserError):
    """The round's partial checkpoint cannot be resumed as asked; RESTART_FLAG discards it."""


def round_dir(ckpt_root: Path, method: str, round_index: int) -> Path:
    return Path(ckpt_root) / method / f"round_{round_index:03d}"


def partial_dir(final_dir: Path) -> Path:
    return final_dir.with_name(final_dir.name + ".partial")


def generators(
    seed: int, round_index: int, rank: int
) -> tuple[np.random.Generator, torch.Generator]:
    ss = np.random.SeedSequence([seed, round_index, rank])
    np_rng = np.random.default_rng(ss)
    torch_gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))
    return np_rng, torch_gen


@dataclass(frozen=True)
class Start:
    """How a round begins: the networks, the counters and RNGs, the partial it resumes."""

    learner: Learner
    state: TrainerState
    np_rng: np.random.Generator
    torch_gen: torch.Generator
    resumed: Checkpoint | None = None


def _data_changes(saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """What differs between the data a partial was trained on and the data now; None: same."""
    a = {k: v for k, v in saved.items() if k not in _DATA_FREE_KEYS}
    b = {k: v for k, v in now.items() if k not in _DATA_FREE_KEYS}
    if a == b:
        return None
    parts = []
    if "store_revision" in saved or "store_revision" in now:
        parts.append(
            f"store revision {saved.get('store_revision')} -> {now.get('store_revision')}"
        )
    uids_a, uids_b = a.get("episode_uids"), b.get("episode_uids")
    if isinstance(uids_a, list) and isinstance(uids_b, list) and uids_a != uids_b:
        # The store gives a new uid to every new or re-converted (e.g. relabeled) bag.
        added, removed = sorted(set(uids_b) - set(uids_a)), sorted(set(uids_a) - set(uids_b))
        parts.append(
            f"episodes {a.get('episodes')} -> {b.get('episodes')}: {len(added)} "
            f"added{_uids(added)}, {len(removed)} removed{_uids(removed)}"
        )
    else:
        parts += [
            f"{key} {_short(a.get(key))} -> {_short(b.get(key))}"
            for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)
        ]
    return "; ".join(parts)


def _uids(uids: Sequence[int]) -> str:
    if not uids:
        return ""
    shown = ", ".join(str(u) for u in uids[:5])
    return f" (uid {shown}{', ...' if len(uids) > 5 else ''})"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resume_checkpoint(
    part: Path, cfg: TrainConfig, data: dict[str, Any], rank: Dist
) -> Checkpoint:
    """The round's partial checkpoint, when resuming it reproduces the uninterrupted run."""
    restart = f"pass {RESTART_FLAG} to discard it and train the round over"
    try:
        ckpt = load_checkpoint(part)
    except CheckpointError as exc:
        raise ResumeRefused(f"{one_line(exc)}; {restart}") from None
    step = ckpt.trainer.get("step_in_round")
    changed = _config_changes(ckpt.train_config, cfg)
    if changed:
        raise ResumeRefused(
            f"{part} was written with a different config ({', '.join(changed)}); resuming "
            f"would not reproduce the run: restore those keys or {restart}"
        )
    saved = ckpt.manifest.get("data")
    what = "the partial does not record its data" if saved is None else _data_changes(saved, data)
    if what:
        raise ResumeRefused(
            f"{part} (step {step}) was trained on other data than the store holds now ({what});"
            f" resuming would mix the two: {restart}"
        )
    writers = len(ckpt.trainer.get("np_rng_states", []))
    if writers != rank.world:
        raise ResumeRefused(
            f"{part} was written by {writers} rank(s); resume it with the same number of "
            f"processes (now {rank.world}) or {restart}"
        )
    return ckpt


def start_round(
    cfg: TrainConfig,
    streams: SampleStreams,
    final: Path,
    round_index: int,
    init_from: Path | None,
    rank: Dist,
) -> Start:
    """Resume from the partial checkpoint, or initialise from ``init_from``, or from scratch."""
    np_rng, torch_gen = generators(cfg.seed, round_index, rank.rank)
    part = partial_dir(final)
    if part.is_dir():
        ckpt = resume_checkpoint(part, cfg, streams.manifest(), rank)
        learner = restore_learner(ckpt, cfg, with_optimizers=True)
        state = ckpt.trainer_state()
        np_rng.bit_generator.state = state.np_rng_states[rank.rank]
        torch_gen.set_state(state.torch_rng_states[rank.rank])
        return Start(learner, state, np_rng, torch_gen, resumed=ckpt)
    if init_from is not None:
        # Normalisation statistics stay those of the initial checkpoint: the actor was trained
        # in that frame, and inference must apply the same one.
        learner = restore_learner(load_checkpoint(init_from), cfg, with_optimizers=False)
    else:
        d = streams.dims()
        mcfg = cfg.model_config().with_dims(
            proprio_dim=d["proprio_dim"],
            action_dim=d["action_dim"],
            env_state_dim=d.get("env_state_dim", 0),
        )
        learner = build_learner(cfg, mcfg, streams.norm_stats())
    state = TrainerState(
        round_index=round_index,
        model_index=learner.model_index,
        recap_epsilon=cfg.recap_epsilon or 0.0,
    )
    return Start(learner, state, np_rng, torch_gen)


# Keys that may differ on resume without changing the result (where it runs, how fast it logs).
_RESUME_FREE_KEYS = (
    "device",
    "num_threads",
    "convert_workers",
    "log_every",
    "checkpoint_every",
)


def _config_changes(saved: TrainConfig, now: TrainConfig) -> list[str]:
    a, b = saved.to_dict(), now.to_dict()
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if k not in _RESUME_FREE_KEYS and a[k] != b[k]]


def capture_state(
    state: TrainerState,
    learner: Learner,
    step: int,
    np_rng: np.random.Generator,
    torch_gen: torch.Generator,
    rank: Dist,
) -> TrainerState:
    """The state to checkpoint, with every rank's RNG state (a collective under torchrun)."""
    mine = (np_rng.bit_generator.state, torch_gen.get_state())
    states = [mine]
    if rank.world > 1:
        states = [None] * rank.world
        dist.all_gather_object(states, mine)
    state.step_in_round = step
    state.model_index = learner.model_index
    state.np_rng_states = [s[0] for s in states]
    state.torch_rng_states = [s[1] for s in states]
    return state


def save_round(
    path: Path,
    learner: Learner,
    cfg: TrainConfig,
    state: TrainerState,
    manifest: dict[str, Any],
    rank: Dist,
) -> None:
    if rank.main:
        save_checkpoint(path, learner, cfg, state, manifest)
    rank.barrier()  # nobody races ahead of (or resumes from) a half-written checkpoint


def tidy_round(final: Path, restart_round: bool) -> None:
    """Before a round: finish interrupted checkpoint writes, drop what the round no longer needs.

    Rank 0 only (the one writer of the round's checkpoints).
    """
    part = partial_dir(final)
    for path in (final, part):
        note = recover_checkpoint(path)
        if note:
            print(f"{PROG}: {note}", file=sys.stderr)
    if final.is_dir() and part.exists():
        # Killed after the final checkpoint was in place, before the partial was removed.
        discard_checkpoint(part)
    elif restart_round and part.exists():
        discard_checkpoint(part)
        print(f"{PROG}: {RESTART_FLAG}: discarded {part}", file=sys.stderr)
