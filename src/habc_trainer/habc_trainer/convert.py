"""`convert`: episode bags under one or more data roots -> the episode store (incremental).

    convert --data-root data/ --store store/            # only new or changed bags are read
    convert --data-root data/ --store store/ --rebuild  # from scratch

One episode at a time is held in memory. A bad bag is reported with its reason and skipped; it
never stops the conversion. The summary counts episodes by source and outcome, interventions,
frames, truncated (recovered) bags and skipped bags with reasons; for the episodes converted in
this run, how the arms' commands were paired and how far apart they were logged, and how often
the arm drivers' safety changed a command.
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

from habc_trainer.arm_sync import PAIRING_MODES
from habc_trainer.contract import SAFETY_FLAG_NAMES, find_episode_dirs
from habc_trainer.episode import Episode, EpisodeError, ExtractConfig, extract_episode
from habc_trainer.features import ACTION, CAMERA_NAMES, REQUESTED_ACTION, SAFETY
from habc_trainer.store import EpisodeStore, StoreWriter, bag_fingerprint


@dataclass
class ConvertSummary:
    """What one convert run did, and what the store holds afterwards."""

    found: int = 0
    converted: int = 0
    unchanged: int = 0
    converted_frames: int = 0
    truncated: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # bag -> reason
    seconds: float = 0.0
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
            f"{self.unchanged}, skipped {len(self.skipped)} in {self.seconds:.1f}s",
        ]
        if self.converted:
            lines += self._format_commands()
        lines += [
            f"store (revision {self.store_revision}): {self.store_episodes} episodes, "
            f"{self.store_frames} frames, {self.store_intervened} rollouts with interventions",
        ]
        for key, n in sorted(self.store_by_source_outcome.items()):
            lines.append(f"  {key:<24} {n}")
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
) -> ConvertSummary:
    """Convert every new or changed bag under `data_roots` into the store at `store_root`."""
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
        for bag in tqdm(bags, desc="convert", unit="bag", disable=not progress, file=sys.stderr):
            if writer.is_current(bag):
                reason = writer.known_skip_reason(bag)
                if reason is None:
                    summary.unchanged += 1
                else:
                    summary.skipped[str(bag)] = f"(unchanged since last run) {reason}"
                continue
            fingerprint = bag_fingerprint(bag)
            try:
                episode = extract_episode(bag, cfg)
                writer.add(episode, fingerprint)
            except EpisodeError as exc:
                writer.skip(bag, fingerprint, str(exc))
                summary.skipped[str(bag)] = str(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - one bad bag never aborts the run
                reason = f"{bag}: {type(exc).__name__}: {exc}"
                writer.skip(bag, fingerprint, reason)
                summary.skipped[str(bag)] = reason
                continue
            summary.add(episode)
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convert", description=__doc__.splitlines()[0])
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
    p.add_argument("--image-size", type=int, default=96, help="training resolution (square)")
    p.add_argument("--proprio", choices=("auto", "ee", "joint"), default="auto")
    p.add_argument(
        "--max-staleness",
        type=float,
        default=0.25,
        help="seconds an observation may lag its control tick",
    )
    p.add_argument(
        "--max-command-gap",
        type=float,
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
    p.add_argument("--summary-json", type=Path, help="also write the summary as JSON here")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = ExtractConfig(
            cameras=tuple(c for c in args.cameras.split(",") if c),
            image_size=args.image_size,
            proprio=args.proprio,
            max_obs_staleness_s=args.max_staleness,
            max_command_gap_s=args.max_command_gap,
            default_source=args.default_source,
            default_task=args.default_task,
        )
        summary = convert(
            args.data_root,
            args.store,
            cfg,
            rebuild=args.rebuild,
            retry_skipped=args.retry_skipped,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"convert: error: {exc}", file=sys.stderr)
        return 2
    print(summary.format())
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
