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

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from habc_core.cli import (
    ArgumentParser,
    UserError,
    non_negative_int,
    one_line,
    parse_overrides,
    user_errors,
)
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
from habc_trainer.models.example import concat_batches
from habc_trainer.normalize import NormStats
from habc_trainer.update import (
    Learner,
    StepContext,
    build_learner,
    critic_calibration,
    critic_pretrain_update,
    recap_advantages,
    update,
)
from habc_trainer.weights import pick_recap_epsilon

STREAMS: tuple[str, str, str] = ("sft", "int", "auto")  # D_SFT, D_int, D_auto (batch_mix order)
HELDOUT = "auto_heldout"  # rollout windows kept out of training, for Imit-Recap's epsilon
PROG = "train_round"
RESTART_FLAG = "--restart-round"
# Keys of SampleStreams.manifest() that may change without changing what a round trains on:
# where the store lives, and its revision (bumped by bags of later rounds or eval episodes,
# which this round's replay buffer does not include).
_DATA_FREE_KEYS = ("store", "store_revision")


class ResumeRefused(UserError):
    """The round's partial checkpoint cannot be resumed as asked; RESTART_FLAG discards it."""


class SampleStreams(Protocol):
    """The replay buffer as the trainer sees it (engineer B's window dataset implements it)."""

    def size(self, stream: str) -> int:
        """Number of windows in ``stream`` (one of STREAMS or HELDOUT)."""
        ...

    def sample(self, stream: str, n: int, rng: np.random.Generator) -> dict[str, Any]:
        """``n`` windows drawn with replacement as a dict batch (features.py keys)."""
        ...

    def norm_stats(self) -> NormStats: ...

    def dims(self) -> dict[str, int]:
        """{"proprio_dim", "action_dim", "env_state_dim"} of the stored episodes."""
        ...

    def manifest(self) -> dict[str, Any]:
        """JSON-able description of the data (episodes, rounds, counts) for the checkpoint."""
        ...


def batch_counts(mix: Sequence[float], sizes: Sequence[int], batch_size: int) -> list[int]:
    """Split ``batch_size`` over the streams by ``mix``; empty streams give their share away.

    Largest-remainder rounding so the counts always sum to batch_size.
    """
    w = np.array([m if s > 0 else 0.0 for m, s in zip(mix, sizes, strict=True)], dtype=float)
    if w.sum() <= 0:
        raise ValueError(f"no data for batch_mix {tuple(mix)}: stream sizes {tuple(sizes)}")
    exact = w / w.sum() * batch_size
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts))[: batch_size - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def draw_batch(
    streams: SampleStreams, counts: Sequence[int], rng: np.random.Generator
) -> dict[str, Any]:
    return concat_batches(
        [streams.sample(name, n, rng) for name, n in zip(STREAMS, counts, strict=True) if n > 0]
    )


def round_dir(ckpt_root: Path, method: str, round_index: int) -> Path:
    return Path(ckpt_root) / method / f"round_{round_index:03d}"


def partial_dir(final_dir: Path) -> Path:
    return final_dir.with_name(final_dir.name + ".partial")


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed(cfg: TrainConfig) -> tuple[Dist, TrainConfig]:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else single process.

    NCCL on CUDA (one GPU per local rank), gloo on CPU. Returns the config with this rank's
    device filled in.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), cfg
    cuda = cfg.device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        cfg = dataclasses.replace(cfg, device=f"cuda:{local}")
    return Dist(dist.get_rank(), dist.get_world_size()), cfg


def _generators(
    seed: int, round_index: int, rank: int
) -> tuple[np.random.Generator, torch.Generator]:
    ss = np.random.SeedSequence([seed, round_index, rank])
    np_rng = np.random.default_rng(ss)
    torch_gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))
    return np_rng, torch_gen


@dataclass(frozen=True)
class _Start:
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


def _resume(part: Path, cfg: TrainConfig, data: dict[str, Any], rank: Dist) -> Checkpoint:
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


def _start(
    cfg: TrainConfig,
    streams: SampleStreams,
    final: Path,
    round_index: int,
    init_from: Path | None,
    rank: Dist,
) -> _Start:
    """Resume from the partial checkpoint, or initialise from ``init_from``, or from scratch."""
    np_rng, torch_gen = _generators(cfg.seed, round_index, rank.rank)
    part = partial_dir(final)
    if part.is_dir():
        ckpt = _resume(part, cfg, streams.manifest(), rank)
        learner = restore_learner(ckpt, cfg, with_optimizers=True)
        state = ckpt.trainer_state()
        np_rng.bit_generator.state = state.np_rng_states[rank.rank]
        torch_gen.set_state(state.torch_rng_states[rank.rank])
        return _Start(learner, state, np_rng, torch_gen, resumed=ckpt)
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
    return _Start(learner, state, np_rng, torch_gen)


# Keys that may differ on resume without changing the result (where it runs, how fast it logs).
_RESUME_FREE_KEYS = ("device", "num_threads", "log_every", "checkpoint_every")


def _config_changes(saved: TrainConfig, now: TrainConfig) -> list[str]:
    a, b = saved.to_dict(), now.to_dict()
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if k not in _RESUME_FREE_KEYS and a[k] != b[k]]


def _capture(
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


def _save(
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


def _pick_epsilon(learner: Learner, batch: dict[str, Any], cfg: TrainConfig, rank: Dist) -> float:
    """Imit-Recap's epsilon on held-out rollouts; averaged over ranks so all filter alike."""
    eps = pick_recap_epsilon(recap_advantages(learner, batch, cfg), cfg.recap_pass_rate)
    if rank.world > 1:
        t = torch.tensor([eps], dtype=torch.float64, device=cfg.device)  # NCCL: on the GPU
        dist.all_reduce(t)
        eps = float(t) / rank.world
    return eps


def _tidy(final: Path, restart_round: bool) -> None:
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


def _pretrain_critic(
    learner: Learner,
    streams: SampleStreams,
    counts: Sequence[int],
    cfg: TrainConfig,
    np_rng: np.random.Generator,
    heldout: dict[str, Any] | None,
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
        critic_pretrain_update(learner, draw_batch(streams, counts, np_rng), cfg, step)
    if heldout is not None:
        out["after_pretrain"] = critic_calibration(learner, heldout, cfg)
    return out


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
        _tidy(final, restart_round)
    rank.barrier()
    if final.is_dir():
        # A finished round is never trained twice by accident (pipelines rerun stages).
        print(f"{PROG}: {final} already exists; delete it to retrain", file=sys.stderr)
        return final
    start = _start(cfg, streams, final, round_index, Path(init_from) if init_from else None, rank)
    learner, state, np_rng, torch_gen = start.learner, start.state, start.np_rng, start.torch_gen
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
    calibration_batch = None
    if method.train_critic and streams.size(HELDOUT) > 0:
        # A fixed held-out batch drawn from its own generator: the training draws stay as
        # they were, and every measurement of this round sees the same windows.
        calibration_batch = streams.sample(
            HELDOUT, cfg.recap_heldout_batch, np.random.default_rng([cfg.seed, round_index, 7])
        )
    if start.resumed is not None:
        manifest["critic_calibration"] = start.resumed.manifest.get("critic_calibration", {})
    else:
        manifest["critic_calibration"] = _pretrain_critic(
            learner, streams, counts, cfg, np_rng, calibration_batch, progress and rank.main
        )
    writer = None
    if log_dir is not None and rank.main:
        from torch.utils.tensorboard import SummaryWriter  # heavy import, only when logging

        writer = SummaryWriter(str(Path(log_dir) / cfg.method / f"round_{round_index:03d}"))
    heldout = HELDOUT if streams.size(HELDOUT) > 0 else "auto"
    bar = tqdm(
        total=cfg.steps_per_round,
        initial=state.step_in_round,
        disable=not (progress and rank.main),
        desc=f"{cfg.method} round {round_index}",
        dynamic_ncols=True,
    )
    stop_at = (
        cfg.steps_per_round
        if max_steps is None
        else min(cfg.steps_per_round, state.step_in_round + max_steps)
    )
    t0, first = time.perf_counter(), state.step_in_round
    for step in range(state.step_in_round, stop_at):
        if (
            method.gate == "recap"
            and cfg.recap_epsilon is None
            and step % cfg.recap_epsilon_every == 0
            and streams.size(heldout) > 0
        ):
            state.recap_epsilon = _pick_epsilon(
                learner, streams.sample(heldout, cfg.recap_heldout_batch, np_rng), cfg, rank
            )
        batch = draw_batch(streams, counts, np_rng)
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
                _save(
                    partial_dir(final),
                    learner,
                    cfg,
                    _capture(state, learner, done_steps, np_rng, torch_gen, rank),
                    manifest,
                    rank,
                )
    bar.close()
    if writer is not None:
        writer.close()
    if stop_at < cfg.steps_per_round:
        return None
    if calibration_batch is not None:
        manifest["critic_calibration"]["end"] = critic_calibration(learner, calibration_batch, cfg)
    _save(
        final,
        learner,
        cfg,
        _capture(state, learner, cfg.steps_per_round, np_rng, torch_gen, rank),
        manifest,
        rank,
    )
    if rank.main:
        discard_checkpoint(partial_dir(final))
    rank.barrier()
    return final


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
    """Convert new or changed bags under ``data_root`` into the store (engineer B's converter).

    The store keeps the cameras and resolution the model consumes (none in state mode).
    """
    from habc_trainer.convert import convert  # the data path; imported only when used
    from habc_trainer.episode import ExtractConfig

    model = cfg.model_config()
    extract = ExtractConfig(cameras=tuple(model.cameras), image_size=model.image_size)
    return convert([data_root], store, extract, progress=progress).format()


def open_store(store: Path, round_index: int, cfg: TrainConfig) -> SampleStreams:
    """The replay buffer of every round <= round_index (engineer B's window streams)."""
    from habc_trainer.store_streams import open_streams

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


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
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


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0, or SystemExit(2) with one line on stderr for a user's mistake."""
    from habc_trainer.store import StoreError  # the data path; imported only when used

    with user_errors(PROG):
        args = _parser().parse_args(argv)
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
