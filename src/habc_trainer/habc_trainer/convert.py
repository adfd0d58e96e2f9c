"""`habc-convert`: episode bags under one or more data roots -> the episode store (incremental).

    habc-convert --data-root data/ --store store/            # only new or changed bags are read
    habc-convert --data-root data/ --store store/ --rebuild  # from scratch

One episode at a time is held in memory. A bad bag is reported with its reason and skipped; it
never stops the conversion (an unexpected error in this code is caught too, reported as an
internal error with its type). The summary counts episodes by source and outcome, interventions
and frames; it names every bag recovered from a torn / damaged file (with the frames recovered
and what was lost), every bag whose outcome came from its END event for want of a sidecar, every
warning (ids that disagree, an outcome dropped with a lost end) and every skipped bag with its
reason; for the episodes converted in this run, how the arms' commands were paired and how far
apart they were logged, and how often the arm drivers' safety changed a command.

User errors on the command line (a data root that is not a directory, a bad flag value, a store
built with other settings) are one line naming the flag, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from habc_core.cli import (
    ArgumentParser,
    UserError,
    non_negative_int,
    one_line,
    positive_int,
    user_errors,
)
from habc_core.contract import SAFETY_FLAG_NAMES, find_episode_dirs
from habc_core.features import ACTION, CAMERA_NAMES, REQUESTED_ACTION, SAFETY
from habc_trainer.arm_sync import PAIRING_MODES
from habc_trainer.convert_pool import extracted, worker_count
from habc_trainer.episode import Episode, ExtractConfig
from habc_trainer.store import EpisodeStore, StoreError, StoreWriter, bag_fingerprint

PROG = "habc-convert"
# How many bags a summary line lists before it says "... and N more" (the JSON has them all).
_LIST_LIMIT = 10


@dataclass
class ConvertSummary:
    """What one convert run did, and what the store holds afterwards."""

    found: int = 0
    converted: int = 0
    unchanged: int = 0
    converted_frames: int = 0
    truncated: int = 0
    recovered: dict[str, str] = field(default_factory=dict)  # bag -> frames kept, what was lost
    outcome_from_event: list[str] = field(default_factory=list)  # bags without sidecar, END used
    warnings: dict[str, list[str]] = field(default_factory=dict)  # bag -> warnings
    skipped: dict[str, str] = field(default_factory=dict)  # bag -> reason
    seconds: float = 0.0
    workers: int = 1  # threads that extracted the bags (convert_pool)
    store_episodes: int = 0
    store_frames: int = 0
    store_by_source_outcome: dict[str, int] = field(default_factory=dict)
    store_intervened: int = 0
    store_revision: int = 0
    # --- the episodes converted in this run ---
    paired_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PAIRING_MODES, 0))
    skew_median_ms: float | None = None  # median over episodes of their median command skew
    skew_max_ms: float | None = None  # largest skew of any frame
    arm_frames: int = 0  # frames x arms
    safety_arm_frames: int = 0  # arm-frames whose executed command has any SAFETY_* bit
    safety_by_flag: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(SAFETY_FLAG_NAMES.values(), 0)
    )
    request_arm_frames: int = 0  # arm-frames with a recorded request
    request_differs_arm_frames: int = 0  # of those: requested != executed by more than 1e-6
    _skew_medians: list[float] = field(default_factory=list, repr=False, compare=False)

    def add(self, episode: Episode) -> None:
        """Count one converted episode (frames, pairing, skew, safety, requests)."""
        info = episode.info
        self.converted += 1
        self.converted_frames += episode.length
        self.truncated += int(info.truncated)
        if info.truncated:
            self.recovered[info.bag_dir] = info.recovery
        if info.outcome_from == "event":
            self.outcome_from_event.append(info.bag_dir)
        if info.warnings:
            self.warnings[info.bag_dir] = list(info.warnings)
        self.paired_by[info.command_pairing] = self.paired_by.get(info.command_pairing, 0) + 1
        self._skew_medians.append(info.command_skew_median_ms)
        self.skew_median_ms = float(np.median(self._skew_medians))
        self.skew_max_ms = max(self.skew_max_ms or 0.0, info.command_skew_max_ms)
        bits = episode.arrays[SAFETY]
        self.arm_frames += bits.size
        self.safety_arm_frames += int((bits != 0).sum())
        for bit, name in SAFETY_FLAG_NAMES.items():
            self.safety_by_flag[name] += int(((bits & bit) != 0).sum())
        requested = episode.arrays.get(REQUESTED_ACTION)
        if requested is not None:
            k = episode.action_arm_dims
            shape = (episode.length, -1, k)
            req, act = requested.reshape(shape), episode.arrays[ACTION].reshape(shape)
            known = np.isfinite(req).all(axis=2)
            differs = (np.abs(req - act) > 1e-6).any(axis=2) & known
            self.request_arm_frames += int(known.sum())
            self.request_differs_arm_frames += int(differs.sum())

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        out["safety_pct"] = _pct(self.safety_arm_frames, self.arm_frames)
        out["request_differs_pct"] = _pct(self.request_differs_arm_frames, self.request_arm_frames)
        return out

    def format(self) -> str:
        lines = [
            f"bags found {self.found}: converted {self.converted} ({self.converted_frames} "
            f"frames, {self.truncated} recovered from truncated files), unchanged "
            f"{self.unchanged}, skipped {len(self.skipped)} in {self.seconds:.1f}s"
            + (f" ({self.workers} workers)" if self.workers > 1 else ""),
        ]
        if self.converted:
            lines += self._format_commands()
        lines += [
            f"store (revision {self.store_revision}): {self.store_episodes} episodes, "
            f"{self.store_frames} frames, {self.store_intervened} rollouts with interventions",
        ]
        for key, n in sorted(self.store_by_source_outcome.items()):
            lines.append(f"  {key:<24} {n}")
        for bag, what in sorted(self.recovered.items()):
            lines.append(f"recovered torn bag {bag}: {what}")
        if self.outcome_from_event:
            bags = sorted(self.outcome_from_event)
            more = len(bags) - _LIST_LIMIT
            lines.append(
                f"outcome from the END event (no sidecar) for {len(bags)} bag(s): "
                + ", ".join(bags[:_LIST_LIMIT])
                + (f" ... and {more} more" if more > 0 else "")
            )
        for bag, warnings in sorted(self.warnings.items()):
            lines.extend(f"warning {bag}: {w}" for w in warnings)
        for bag, reason in sorted(self.skipped.items()):
            lines.append(f"skipped {bag}: {reason}")
        return "\n".join(lines)

    def _format_commands(self) -> list[str]:
        pairing = ", ".join(
            f"{n} by {mode.replace('_', ' ')}" for mode, n in self.paired_by.items()
        )
        flags = ", ".join(
            f"{name} {_pct(n, self.arm_frames):.1f}%"
            for name, n in self.safety_by_flag.items()
            if n
        )
        differs = _pct(self.request_differs_arm_frames, self.request_arm_frames)
        requests = (
            f"requested != executed on {differs:.1f}% of {self.request_arm_frames} arm-frames "
            "with requests"
            if self.request_arm_frames
            else "no requests recorded"
        )
        return [
            f"arm commands paired {pairing}; skew median {self.skew_median_ms:.1f} ms (median "
            f"of episode medians), max {self.skew_max_ms:.1f} ms",
            f"safety intervened on {_pct(self.safety_arm_frames, self.arm_frames):.1f}% of "
            f"{self.arm_frames} arm-frames ({flags or 'no flag'}); {requests}",
        ]


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def convert(
    data_roots: Sequence[Path | str],
    store_root: Path | str,
    cfg: ExtractConfig | None = None,
    *,
    rebuild: bool = False,
    retry_skipped: bool = False,
    shard_frames: int = 100_000,
    progress: bool = False,
    workers: int = 1,
) -> ConvertSummary:
    """Convert every new or changed bag under `data_roots` into the store at `store_root`.

    `workers` > 1 extracts the bags on that many threads, two a process (0: one per core;
    convert_pool), the store still written in bag order: the same store as a serial run."""
    cfg = cfg or ExtractConfig()
    t0 = time.perf_counter()
    store_root = Path(store_root)
    if rebuild and store_root.exists():
        shutil.rmtree(store_root)
    summary = ConvertSummary()
    bags: list[Path] = []
    for root in data_roots:
        bags.extend(d for d in find_episode_dirs(root) if d.resolve() != store_root.resolve())
    summary.found = len(bags)
    with StoreWriter(store_root, cfg.fingerprint(), shard_frames=shard_frames) as writer:
        if retry_skipped:
            writer.forget_skips()
        todo: list[tuple[Path, list[list[Any]]]] = []
        for bag in bags:
            if writer.is_current(bag):
                reason = writer.known_skip_reason(bag)
                if reason is None:
                    summary.unchanged += 1
                else:
                    summary.skipped[str(bag)] = f"(unchanged since last run) {reason}"
                continue
            todo.append((bag, bag_fingerprint(bag)))
        pool = worker_count(workers, len(todo))
        results = extracted([bag for bag, _fp in todo], cfg, pool)
        with tqdm(
            total=len(todo), desc="convert", unit="bag", disable=not progress, file=sys.stderr
        ) as bar:
            for (bag, fingerprint), (episode, reason) in zip(todo, results, strict=True):
                bar.update()
                if episode is not None:
                    try:
                        writer.add(episode, fingerprint)
                    except StoreError as exc:  # the store says what is wrong
                        reason = one_line(exc)
                    else:
                        summary.add(episode)
                        continue
                writer.skip(bag, fingerprint, reason or "not converted")
                summary.skipped[str(bag)] = reason or "not converted"
        summary.workers = pool
    store = EpisodeStore(store_root)
    summary.store_episodes = len(store)
    summary.store_frames = store.num_frames
    summary.store_revision = store.revision
    counts = Counter(f"{e['source']}/{e['outcome']}" for e in store.episodes)
    summary.store_by_source_outcome = dict(counts)
    summary.store_intervened = sum(
        bool(e["intervened"]) and e["source"] != "demo" for e in store.episodes
    )
    summary.seconds = time.perf_counter() - t0
    return summary


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (0.0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument(
        "--data-root",
        type=Path,
        nargs="+",
        required=True,
        help="directories searched (recursively) for episode bags",
    )
    p.add_argument("--store", type=Path, required=True, help="episode store directory")
    p.add_argument(
        "--cameras",
        default=",".join(CAMERA_NAMES),
        help="comma-separated cameras to store; empty for state-only episodes",
    )
    p.add_argument(
        "--image-size", type=positive_int, default=96, help="training resolution (square)"
    )
    p.add_argument("--proprio", choices=("auto", "ee", "joint"), default="auto")
    p.add_argument(
        "--max-staleness",
        type=_positive_float,
        default=0.25,
        metavar="SECONDS",
        help="seconds an observation may lag its control tick",
    )
    p.add_argument(
        "--max-command-gap",
        type=_positive_float,
        default=ExtractConfig.max_command_gap_s,
        metavar="SECONDS",
        help="a mid-episode tick with no command of an arm this close is an error (skews are "
        "paired, never refused)",
    )
    p.add_argument(
        "--default-source",
        choices=("demo", "rollout", "eval"),
        help="source for bags with neither sidecar nor START event",
    )
    p.add_argument("--default-task", help="task prompt for bags with no sidecar and no events")
    p.add_argument("--rebuild", action="store_true", help="delete the store and convert all")
    p.add_argument(
        "--retry-skipped",
        action="store_true",
        help="read again bags skipped by an earlier run although unchanged",
    )
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="threads extracting bags, two a process (default 0: one per core; 1: only this "
        "thread)",
    )
    p.add_argument("--summary-json", type=Path, help="also write the summary as JSON here")
    p.add_argument("--no-progress", action="store_true")
    return p


# ExtractConfig names its fields in errors; the user typed flags.
_FLAG_OF_FIELD = {
    "cameras": "--cameras",
    "image_size": "--image-size",
    "max_obs_staleness_s": "--max-staleness",
    "max_command_gap_s": "--max-command-gap",
    "default_source": "--default-source",
}


def _checked_inputs(args: argparse.Namespace) -> ExtractConfig:
    """Validate paths and flag values before any work; a UserError names the flag."""
    for root in args.data_root:
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a directory"
            raise UserError(f"--data-root {str(root)!r}: {what}")
    if args.store.exists() and not args.store.is_dir():
        raise UserError(f"--store {str(args.store)!r}: is a file, not a store directory")
    if args.summary_json is not None and not args.summary_json.parent.is_dir():
        raise UserError(
            f"--summary-json {str(args.summary_json)!r}: directory "
            f"{str(args.summary_json.parent)!r} does not exist"
        )
    try:
        return ExtractConfig(
            cameras=tuple(c for c in args.cameras.split(",") if c),
            image_size=args.image_size,
            proprio=args.proprio,
            max_obs_staleness_s=args.max_staleness,
            max_command_gap_s=args.max_command_gap,
            default_source=args.default_source,
            default_task=args.default_task,
        )
    except ValueError as exc:
        name = str(exc).partition(":")[0]
        flag = _FLAG_OF_FIELD.get(name)
        raise UserError(f"{flag}: {exc}" if flag else str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0, or SystemExit(2) with one line on stderr for a user's mistake."""
    with user_errors(PROG):
        args = _parser().parse_args(argv)
        cfg = _checked_inputs(args)
        try:
            summary = convert(
                args.data_root,
                args.store,
                cfg,
                rebuild=args.rebuild,
                retry_skipped=args.retry_skipped,
                progress=not args.no_progress,
                workers=args.workers,
            )
        except StoreError as exc:  # a store built with other settings: the user picks, reruns
            raise UserError(f"--store {str(args.store)!r}: {one_line(exc)}") from None
    print(summary.format())
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
