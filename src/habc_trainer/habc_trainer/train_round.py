"""``ros2 run habc_trainer train_round``: one HABC training round, resumable.

Round N: (convert new bags) -> replay buffer of all rounds <= N -> initialise from round N-1's
checkpoint -> ``steps_per_round`` updates (critic + actor) -> round N's checkpoint. A periodic
checkpoint (``round_NNN.partial``) lets a killed run resume and end exactly where an
uninterrupted run would: the sampling and noise RNG states are part of it. The partial records
the data it was trained on; a resume on data that changed since is refused (``--restart-round``
discards the partial and trains the round over).

Multi-GPU / multi-node: launch with torchrun (``torchrun --nproc-per-node 8 -m
habc_trainer.train_round ...``); every rank samples its own batch, gradients are averaged, rank 0
writes checkpoints and logs. The global batch is ``world_size * batch_size``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from habc_core.cli import UserError, one_line, parse_overrides, user_errors
from habc_trainer.checkpoint import CheckpointError, TrainerState, discard_checkpoint
from habc_trainer.config import TrainConfig
from habc_trainer.distributed import Dist, init_distributed
from habc_trainer.models.batch import TrainBatch
from habc_trainer.round_cli import convert_bags, default_init, open_store, parser, t_max_warning
from habc_trainer.round_state import (
    PROG,
    RESTART_FLAG,
    ResumeRefused,
    Start,
    capture_state,
    partial_dir,
    round_dir,
    save_round,
    start_round,
    tidy_round,
)
from habc_trainer.streams import HELDOUT, STREAMS, SampleStreams, batch_counts, draw_batch
from habc_trainer.update import (
    Learner,
    StepContext,
    as_train_batch,
    critic_calibration,
    critic_pretrain_update,
    recap_advantages,
    update,
)
from habc_trainer.weights import pick_recap_epsilon

# Importers (the benchmark, the fault tests, torchrun users) reach these through train_round.
__all__ = [
    "HELDOUT",
    "PROG",
    "RESTART_FLAG",
    "STREAMS",
    "Dist",
    "ResumeRefused",
    "SampleStreams",
    "TrainConfig",
    "batch_counts",
    "convert_bags",
    "default_init",
    "draw_batch",
    "init_distributed",
    "main",
    "open_store",
    "partial_dir",
    "round_dir",
    "run_round",
    "t_max_warning",
    "update",
]


def _pick_epsilon(learner: Learner, batch: dict[str, Any], cfg: TrainConfig, rank: Dist) -> float:
    """Imit-Recap's epsilon on held-out rollouts; averaged over ranks so all filter alike."""
    eps = pick_recap_epsilon(recap_advantages(learner, batch, cfg), cfg.recap_pass_rate)
    if rank.world > 1:
        t = torch.tensor([eps], dtype=torch.float64, device=cfg.device)  # NCCL: on the GPU
        dist.all_reduce(t)
        eps = float(t) / rank.world
    return eps


def _pretrain_critic(
    learner: Learner,
    streams: SampleStreams,
    counts: Sequence[int],
    cfg: TrainConfig,
    np_rng: np.random.Generator,
    heldout: TrainBatch | None,
    progress: bool,
) -> dict[str, Any]:
    """Critic-only steps on the round's data before any actor step (gated methods only).

    The gate of Eq. 7 weights the actor from the first step after N_wu; a critic initialised
    from scratch (round 1) or trained on older rollouts would weight this round's samples by
    noise. Returns the critic's held-out calibration before and after (empty without data).
    """
    method = cfg.method_config()
    out: dict[str, Any] = {}
    if heldout is not None:
        out["start"] = critic_calibration(learner, heldout, cfg)
    if method.gate == "none" or cfg.critic_pretrain_steps == 0:
        return out
    for step in tqdm(
        range(cfg.critic_pretrain_steps),
        disable=not progress,
        desc=f"{cfg.method} critic pre-training",
        dynamic_ncols=True,
    ):
        batch = as_train_batch(learner, draw_batch(streams, counts, np_rng), cfg)
        critic_pretrain_update(learner, batch, cfg, step)
    if heldout is not None:
        out["after_pretrain"] = critic_calibration(learner, heldout, cfg)
    return out


@dataclass(frozen=True)
class _Plan:
    """What a round trains on, fixed before its first step (and recorded in its manifest)."""

    counts: list[int]  # windows per stream of STREAMS in every batch
    manifest: dict[str, Any]
    calibration: TrainBatch | None  # held-out windows the critic's calibration is measured on
    heldout: str  # the stream Imit-Recap picks epsilon on


def _plan(
    cfg: TrainConfig, streams: SampleStreams, round_index: int, start: Start, learner: Learner
) -> _Plan:
    method = cfg.method_config()
    sizes = [streams.size(s) for s in STREAMS]
    counts = batch_counts(method.batch_mix, sizes, cfg.batch_size)
    # The data the round trains on; a resumed round keeps the record of where it started (the
    # resume check made sure the episodes are the same).
    data = streams.manifest() if start.resumed is None else start.resumed.manifest["data"]
    manifest = {
        "round": round_index,
        "method": cfg.method,
        "stream_sizes": dict(zip(STREAMS, sizes, strict=True)),
        "batch_counts": counts,
        "data": data,
    }
    calibration = None
    if method.train_critic and streams.size(HELDOUT) > 0:
        # A fixed held-out batch drawn from its own generator: the training draws stay as
        # they were, and every measurement of this round sees the same windows.
        drawn = streams.sample(
            HELDOUT, cfg.recap_heldout_batch, np.random.default_rng([cfg.seed, round_index, 7])
        )
        calibration = as_train_batch(learner, drawn, cfg)
    heldout = HELDOUT if streams.size(HELDOUT) > 0 else "auto"
    return _Plan(counts, manifest, calibration, heldout)


def _open_writer(log_dir: str | Path | None, cfg: TrainConfig, round_index: int, rank: Dist):
    if log_dir is None or not rank.main:
        return None
    from torch.utils.tensorboard import SummaryWriter  # heavy import, only when logging

    return SummaryWriter(str(Path(log_dir) / cfg.method / f"round_{round_index:03d}"))


def _train_steps(
    cfg: TrainConfig,
    streams: SampleStreams,
    round_index: int,
    start: Start,
    plan: _Plan,
    stop_at: int,
    final: Path,
    rank: Dist,
    writer: Any,
    progress: bool,
) -> None:
    """The actor steps ``state.step_in_round`` .. ``stop_at``, with partial checkpoints."""
    learner, state, np_rng, torch_gen = start.learner, start.state, start.np_rng, start.torch_gen
    method = cfg.method_config()
    bar = tqdm(
        total=cfg.steps_per_round,
        initial=state.step_in_round,
        disable=not progress,
        desc=f"{cfg.method} round {round_index}",
        dynamic_ncols=True,
    )
    t0, first = time.perf_counter(), state.step_in_round
    for step in range(state.step_in_round, stop_at):
        if (
            method.gate == "recap"
            and cfg.recap_epsilon is None
            and step % cfg.recap_epsilon_every == 0
            and streams.size(plan.heldout) > 0
        ):
            state.recap_epsilon = _pick_epsilon(
                learner, streams.sample(plan.heldout, cfg.recap_heldout_batch, np_rng), cfg, rank
            )
        # Converted once here: the update's heads and the actor loss all read this batch.
        batch = as_train_batch(learner, draw_batch(streams, plan.counts, np_rng), cfg)
        metrics = update(
            learner, batch, cfg, StepContext(step, round_index, state.recap_epsilon), torch_gen
        )
        bar.update(1)
        if step % cfg.log_every == 0 or step + 1 == cfg.steps_per_round:
            metrics["recap/epsilon"] = state.recap_epsilon
            metrics["perf/steps_per_s"] = (step + 1 - first) / (time.perf_counter() - t0)
            bar.set_postfix(actor=f"{metrics['loss/actor']:.3f}")
            if writer is not None:
                for k, v in metrics.items():
                    writer.add_scalar(k, v, learner.model_index)
        done_steps = step + 1
        if done_steps % cfg.checkpoint_every == 0 or done_steps == stop_at:
            if done_steps < cfg.steps_per_round:
                captured = capture_state(state, learner, done_steps, np_rng, torch_gen, rank)
                save_round(partial_dir(final), learner, cfg, captured, plan.manifest, rank)
    bar.close()


def run_round(
    cfg: TrainConfig,
    streams: SampleStreams,
    ckpt_root: str | Path,
    round_index: int,
    *,
    init_from: str | Path | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    log_dir: str | Path | None = None,
    restart_round: bool = False,
) -> Path | None:
    """Train one round; returns round N's checkpoint directory (at once if it already exists).

    ``max_steps`` stops early after that many steps in this call (leaving the partial checkpoint,
    as a killed run would) and returns None; the next call resumes from it. ``restart_round``
    discards the partial and trains the round from its start. Raises ResumeRefused when the
    partial cannot be resumed (the data or config changed since, or it is damaged).
    """
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    rank, cfg = init_distributed(cfg)
    final = round_dir(Path(ckpt_root), cfg.method, round_index)
    if rank.main:
        tidy_round(final, restart_round)
    rank.barrier()
    if final.is_dir():
        # A finished round is never trained twice by accident (pipelines rerun stages).
        print(f"{PROG}: {final} already exists; delete it to retrain", file=sys.stderr)
        return final
    init = Path(init_from) if init_from else None
    start = start_round(cfg, streams, final, round_index, init, rank)
    learner, state = start.learner, start.state
    plan = _plan(cfg, streams, round_index, start, learner)
    if start.resumed is not None:
        plan.manifest["critic_calibration"] = start.resumed.manifest.get("critic_calibration", {})
    else:
        plan.manifest["critic_calibration"] = _pretrain_critic(
            learner,
            streams,
            plan.counts,
            cfg,
            start.np_rng,
            plan.calibration,
            progress and rank.main,
        )
    stop_at = (
        cfg.steps_per_round
        if max_steps is None
        else min(cfg.steps_per_round, state.step_in_round + max_steps)
    )
    writer = _open_writer(log_dir, cfg, round_index, rank)
    try:
        _train_steps(
            cfg,
            streams,
            round_index,
            start,
            plan,
            stop_at,
            final,
            rank,
            writer,
            progress and rank.main,
        )
    finally:
        if writer is not None:
            writer.close()
    if stop_at < cfg.steps_per_round:
        return None
    return _finish(cfg, start, plan, final, rank)


def _finish(cfg: TrainConfig, start: Start, plan: _Plan, final: Path, rank: Dist) -> Path:
    """The round's final checkpoint (with the end-of-round calibration); the partial goes."""
    learner = start.learner
    if plan.calibration is not None:
        plan.manifest["critic_calibration"]["end"] = critic_calibration(
            learner, plan.calibration, cfg
        )
    state: TrainerState = capture_state(
        start.state, learner, cfg.steps_per_round, start.np_rng, start.torch_gen, rank
    )
    save_round(final, learner, cfg, state, plan.manifest, rank)
    if rank.main:
        discard_checkpoint(partial_dir(final))
    rank.barrier()
    return final


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0, or SystemExit(2) with one line on stderr for a user's mistake."""
    from habc_trainer.store import StoreError  # the data path; imported only when used

    with user_errors(PROG):
        args = parser().parse_args(argv)
        overrides = parse_overrides(args.set)
        if args.method:
            overrides["method"] = args.method
        cfg = (
            TrainConfig.from_yaml(args.config, **overrides)
            if args.config
            else TrainConfig.from_dict(overrides)
        )
        init = args.init or default_init(args.ckpt_root, cfg.method, args.round_index)
        store = args.store or args.data_root / "store"
        try:
            if not args.no_convert:
                print(
                    convert_bags(args.data_root, store, cfg, not args.no_progress), file=sys.stderr
                )
            streams = open_store(store, args.round_index, cfg)
        except StoreError as exc:  # a store built otherwise / from another version: fix, rerun
            raise UserError(one_line(exc)) from None
        warning = t_max_warning(streams, cfg)
        if warning:
            print(warning, file=sys.stderr)
    try:
        out = run_round(
            cfg,
            streams,
            args.ckpt_root,
            args.round_index,
            init_from=init,
            progress=not args.no_progress,
            log_dir=args.log_dir or args.ckpt_root / "tb",
            restart_round=args.restart_round,
        )
    except (ResumeRefused, CheckpointError) as exc:
        # A refused resume or a damaged --init / previous round: the user decides, no traceback.
        # Errors of the training itself keep theirs.
        with user_errors(PROG):
            raise UserError(one_line(exc)) from None
    print(f"{PROG}: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
