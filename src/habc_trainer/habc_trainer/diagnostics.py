"""What one checkpoint makes of each kind of training sample: flow-matching loss per stream.

The streams split a store's windows the way the trainer's update sees them (update.sample_kinds):

| stream | windows |
| --- | --- |
| `demo` | demonstration windows (D_SFT) |
| `int_success` / `int_failure` | intervention windows (D_int) of a recovered / failed rollout |
| `auto_success` / `auto_failure` | policy windows labeled success / failure (B_O^succ, ^fail) |
| `auto_unlabeled` | policy windows before a takeover (weight 0 in HABC) |

The loss is the actor's own per-sample loss (`Policy.loss`: masked by action_valid, and by M^int
on intervention windows), so a stream's number is what that stream would add to the trainer's
unweighted actor loss. Windows are drawn with replacement from a fixed seed, a fixed count per
stream; flow time and noise come from a generator seeded per stream, so adding a stream does
not move the others' numbers.

`success_only` is filtered BC's data (methods.py `filtered_bc`): the rollout stream restricted
to the frames `weights.success_filter` keeps.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from habc_trainer import weights as W
from habc_trainer.streams import WindowStreams, collate

LOSS_STREAMS: tuple[str, ...] = (
    "demo",
    "int_success",
    "int_failure",
    "auto_success",
    "auto_failure",
    "auto_unlabeled",
)
LOSS_BATCH = 64  # windows per forward pass (memory only; the numbers do not depend on it)


@dataclass(frozen=True)
class StreamLoss:
    """The mean per-sample flow-matching loss of one stream, with its standard error."""

    stream: str
    windows: int  # windows the stream holds
    samples: int  # windows drawn (0: the stream is empty)
    mean: float | None
    sem: float | None

    def to_dict(self) -> dict[str, float | int | str | None]:
        return dict(self.__dict__)


def _episode_success(streams: WindowStreams, frames: np.ndarray) -> np.ndarray:
    """(N,) global frame ids -> (N,) bool: their episode ended in success."""
    success = np.array(
        [streams.store.episodes[i]["outcome"] == "success" for i in streams.episode_ids],
        dtype=bool,
    )
    return (
        success[[streams.locate(int(g))[0] for g in frames]]
        if len(frames)
        else np.zeros(0, dtype=bool)
    )


def split_anchors(streams: WindowStreams) -> dict[str, np.ndarray]:
    """The anchors (global frame ids) of every LOSS_STREAMS entry; see the module docstring.

    Rollout windows are classified by the per-frame credit the trainer uses (`outcome_label`,
    `intervention_window`), so an `auto` anchor that lies in an intervention window counts as an
    intervention window, as update.sample_kinds counts it.
    """
    sft = streams.anchors["sft"]
    roll = np.unique(np.concatenate([streams.anchors["int"], streams.anchors["auto"]]))
    # the per-frame credit arrays WindowStreams keeps for its windows (same package)
    is_int = streams._int[roll]
    label = streams._label[roll]
    ok = _episode_success(streams, roll)
    return {
        "demo": sft,
        "int_success": roll[is_int & ok],
        "int_failure": roll[is_int & ~ok],
        "auto_success": roll[~is_int & (label == 1.0)],
        "auto_failure": roll[~is_int & (label == 0.0)],
        "auto_unlabeled": roll[~is_int & np.isnan(label)],
    }


@torch.no_grad()
def window_losses(
    policy: torch.nn.Module, streams: WindowStreams, frames: np.ndarray, generator: torch.Generator
) -> np.ndarray:
    """(N,) per-sample loss of `policy` (a `Policy`) on the windows anchored at `frames`."""
    out = []
    for i in range(0, len(frames), LOSS_BATCH):
        batch = collate([streams.window(int(g)) for g in frames[i : i + LOSS_BATCH]])
        out.append(policy.loss(batch, generator).detach().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def stream_losses(
    policy: torch.nn.Module,
    sources: Mapping[str, tuple[WindowStreams, np.ndarray]],
    windows: int,
    seed: int = 0,
) -> list[StreamLoss]:
    """Mean loss per stream over `windows` windows drawn with replacement (fixed seed).

    sources: stream name -> (the streams holding it, its anchors). Each stream draws from its
    own generators, seeded by (seed, crc32 of its name).
    """
    if windows < 1:
        raise ValueError(f"windows: must be >= 1, got {windows!r}")
    was_training = policy.training
    policy.eval()
    rows = []
    for name, (streams, anchors) in sources.items():
        ss = np.random.SeedSequence([seed, zlib.crc32(name.encode())])
        rng = np.random.default_rng(ss)
        gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))
        if len(anchors) == 0:
            rows.append(StreamLoss(name, 0, 0, None, None))
            continue
        picks = anchors[rng.integers(0, len(anchors), size=windows)]
        x = window_losses(policy, streams, picks, gen)
        sem = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else None
        rows.append(StreamLoss(name, int(len(anchors)), int(len(x)), float(x.mean()), sem))
    policy.train(was_training)
    return rows


def success_only(streams: WindowStreams) -> WindowStreams:
    """A view of `streams` whose `auto` stream keeps only what weights.success_filter keeps
    (the rest of the view, and the store, are shared with `streams`)."""
    auto = streams.anchors["auto"]
    keep = (
        W.success_filter(
            torch.from_numpy(streams._label[auto]), torch.from_numpy(streams._int[auto])
        ).numpy()
        > 0
    )
    view = copy.copy(streams)
    view.anchors = {**streams.anchors, "auto": auto[keep]}
    return view
