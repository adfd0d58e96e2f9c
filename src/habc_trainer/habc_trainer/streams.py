"""Window samples and the three sample streams D_SFT, D_int, D_auto over the episode store.

A window is anchored at frame t of an episode. One sample is a dict with these features.py keys
(a batch adds a leading axis B; `task` becomes a list of str):

| key | shape / dtype | meaning |
| --- | --- | --- |
| `obs.proprio` | (P,) float32 | proprio at t |
| `obs.env_state` | (S,) float32 | privileged sim state at t (only when the store has it) |
| `obs.images.<cam>` | (h, w, 3) uint8 | RGB at t, training resolution (per selected camera) |
| `next_obs.<same>` | | the same at t + stride, clipped at the last frame |
| `task` / `task_id` | str / int64 | prompt / its index in `WindowStreams.tasks` |
| `actions` | (H, D) float32 | executed actions a_{t:t+H}, zero past the episode end |
| `action_valid` | (H,) bool | chunk step inside the episode |
| `intervention_mask` | (H, D) bool | M^int: dims of the arm(s) under HUMAN authority at t+k |
| `source` | int64 | SOURCE_DEMO / SOURCE_ROLLOUT |
| `outcome_label` | float32 | 1 / 0 on outcome-labeled frames, NaN elsewhere (credit.py) |
| `intervention_window` | bool | >= min_human_steps human frames in t .. t+window-1 |
| `efficiency_target` | bool | supervises V_e (labeled or intervention frame of a success) |
| `terminal_success` | bool | d_t = 1: last frame of a successful episode |
| `episode_success` / `episode_done` | bool | outcome is success / t is the last frame |
| `reward` / `mc_return` | float32 | r_t and R_t for the parent value head (spec §7) |
| `steps_to_end` | int64 | T - 1 - t |
| `episode_index` / `frame_index` | int64 | episode in this stream set / t |
| `model_index` | int64 | actor gradient step that produced a_t (-1 human) |

Streams (anchors; an anchor may be in several):
* `sft` (D_SFT): every frame of every demonstration;
* `int` (D_int): rollout frames whose window is an intervention window (any outcome);
* `auto` (D_auto): rollout frames under policy control, labeled per credit assignment; the
  unlabeled ones (before the last intervention, or outcome unknown) are included with NaN
  `outcome_label` (weight 0 in the update) unless `auto_include_unlabeled` is off. In naive mode
  human frames are labeled too and therefore in `auto`;
* `auto_heldout`: the `auto` windows of a deterministic `heldout_fraction` of labeled rollout
  episodes, kept out of every training stream (Imit-Recap picks its epsilon there).
`eval` episodes are excluded unless `include_eval` (then they count as rollouts).

`SampleStreams` is the trainer's view of these streams (the protocol lives here, beside its
store-backed implementation `WindowStreams`; `models.example.SyntheticStreams` is the in-memory
one of the tests); `draw_batch` mixes one training batch from them, `open_streams` opens them
for a TrainConfig.

Nothing is loaded eagerly except the per-frame labels (a few bytes per frame); arrays are read
from the store's memmaps when a window is drawn.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from habc_core import features as F
from habc_trainer.credit import CREDIT_MODES, assign_credit, value_targets
from habc_trainer.models.batch import concat_batches
from habc_trainer.normalize import FeatureStats, NormStats
from habc_trainer.store import EpisodeStore
from habc_trainer.window_batch import gather_windows

STREAMS: tuple[str, str, str] = ("sft", "int", "auto")  # D_SFT, D_int, D_auto (batch_mix order)
HELDOUT = "auto_heldout"  # rollout windows kept out of training, for Imit-Recap's epsilon
STREAM_NAMES: tuple[str, ...] = (*STREAMS, HELDOUT)
# Share of labeled rollout episodes kept out of training: Imit-Recap picks epsilon on them
# (spec §7: "picked on held-out data") and the gated HABC methods measure their critic's
# calibration on them. Methods without a gate (SFT, Imit-DAgger) keep every episode.
HELDOUT_FRACTION = 0.1


class SampleStreams(Protocol):
    """The replay buffer as the trainer sees it (WindowStreams over the store implements it)."""

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
    """One training batch: ``counts`` windows of each of STREAMS, in that order."""
    return concat_batches(
        [streams.sample(name, n, rng) for name, n in zip(STREAMS, counts, strict=True) if n > 0]
    )


@dataclass(frozen=True)
class StreamConfig:
    """Window and credit settings; defaults follow habc-spec §2, §7, §8."""

    horizon: int = 50  # H
    next_stride: int = 1  # s_{t+k}, k = 1 per spec §4 [choice]
    credit_mode: str = "intervention_aware"
    intervention_window: int = 50
    min_human_steps: int = 10
    gamma: float = 0.99
    failure_cost: float = 100.0  # C
    cameras: tuple[str, ...] | None = None  # None: every camera in the store
    image_size: int | None = None  # None: the store's resolution
    use_env_state: bool = True
    include_eval: bool = False
    auto_include_unlabeled: bool = True
    heldout_fraction: float = 0.0
    max_round: int | None = None  # only episodes of rounds <= max_round

    def __post_init__(self) -> None:
        for name in ("horizon", "next_stride", "intervention_window", "min_human_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an int >= 1, got {value!r}")
        if self.min_human_steps > self.intervention_window:
            raise ValueError(
                f"min_human_steps: {self.min_human_steps} exceeds "
                f"intervention_window {self.intervention_window}"
            )
        if self.credit_mode not in CREDIT_MODES:
            raise ValueError(f"credit_mode: {self.credit_mode!r} not in {list(CREDIT_MODES)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma: must be in [0, 1], got {self.gamma}")
        if self.failure_cost < 0:
            raise ValueError(f"failure_cost: must be >= 0, got {self.failure_cost}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction: must be in [0, 1), got {self.heldout_fraction}")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"image_size: must be >= 1 or None, got {self.image_size}")


def _is_heldout(episode_id: str, fraction: float) -> bool:
    return fraction > 0 and (zlib.crc32(episode_id.encode()) % 10_000) < fraction * 10_000


class WindowStreams:
    """The sample streams over one store (implements SampleStreams)."""

    def __init__(self, store: EpisodeStore, cfg: StreamConfig | None = None) -> None:
        self.store = store
        self.cfg = cfg = cfg or StreamConfig()
        store_cams = [k[len("images.") :] for k in store.keys if k.startswith("images.")]
        if cfg.cameras is None:
            self.cameras = tuple(store_cams)
        else:
            missing = sorted(set(cfg.cameras) - set(store_cams))
            if missing:
                raise ValueError(f"cameras: {missing} not in the store (has {store_cams})")
            self.cameras = tuple(cfg.cameras)
        self.has_env_state = cfg.use_env_state and F.ENV_STATE in store.keys
        self.arm_dims = int(store.manifest.get("action_arm_dims", 0))

        self.episode_ids: list[int] = []  # store episode index of each included episode
        self.tasks: list[str] = []
        task_ids: dict[str, int] = {}
        per_frame: dict[str, list[np.ndarray]] = {
            k: [] for k in ("label", "int", "eff", "term", "reward", "ret")
        }
        anchors: dict[str, list[np.ndarray]] = {k: [] for k in STREAM_NAMES}
        self._ep_task: list[int] = []
        self._ep_source: list[int] = []
        self._ep_success: list[bool] = []
        offset = 0
        starts = []
        for i, e in enumerate(store.episodes):
            source = e["source"]
            if source == "eval" and not cfg.include_eval:
                continue
            if cfg.max_round is not None and e["round"] > cfg.max_round:
                continue
            credit_source = "demo" if source == "demo" else "rollout"
            human = np.asarray(store.array(F.HUMAN, i))
            credit = assign_credit(
                human,
                e["outcome"],
                credit_source,
                window=cfg.intervention_window,
                min_human_steps=cfg.min_human_steps,
                mode=cfg.credit_mode,
            )
            vt = value_targets(
                len(human), e["outcome"], gamma=cfg.gamma, failure_cost=cfg.failure_cost
            )
            frames = offset + np.arange(len(human), dtype=np.int64)
            if credit_source == "demo":
                anchors["sft"].append(frames)
            else:
                auto = ~credit.is_human | credit.labeled
                if not cfg.auto_include_unlabeled:
                    auto &= credit.labeled
                heldout = e["outcome"] != "unknown" and _is_heldout(
                    e["episode_id"], cfg.heldout_fraction
                )
                anchors["auto_heldout" if heldout else "auto"].append(frames[auto])
                if not heldout:
                    anchors["int"].append(frames[credit.intervention_window])
            per_frame["label"].append(credit.outcome_label)
            per_frame["int"].append(credit.intervention_window)
            per_frame["eff"].append(credit.efficiency_target)
            per_frame["term"].append(credit.terminal_success)
            per_frame["reward"].append(vt.reward)
            per_frame["ret"].append(vt.mc_return)
            self.episode_ids.append(i)
            self._ep_task.append(task_ids.setdefault(e["task"], len(task_ids)))
            self._ep_source.append(F.SOURCE_DEMO if source == "demo" else F.SOURCE_ROLLOUT)
            self._ep_success.append(e["outcome"] == "success")
            starts.append(offset)
            offset += len(human)
        self.tasks = list(task_ids)
        self._starts = np.asarray(starts + [offset], dtype=np.int64)

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        self._label = cat(per_frame["label"], np.float32)
        self._int = cat(per_frame["int"], bool)
        self._eff = cat(per_frame["eff"], bool)
        self._term = cat(per_frame["term"], bool)
        self._reward = cat(per_frame["reward"], np.float32)
        self._ret = cat(per_frame["ret"], np.float32)
        self.anchors = {k: cat(v, np.int64) for k, v in anchors.items()}
        # Where each included episode's frames lie in the store (window_batch gathers a whole
        # batch from them at once).
        self.episode_starts = self._starts
        self.shard_names = sorted({store.episodes[i]["shard"] for i in self.episode_ids})
        shard_index = {name: j for j, name in enumerate(self.shard_names)}
        self.episode_rows = np.array(
            [store.episodes[i]["start"] for i in self.episode_ids], dtype=np.int64
        )
        self.episode_shards = np.array(
            [shard_index[store.episodes[i]["shard"]] for i in self.episode_ids], dtype=np.int64
        )
        self.episode_task_ids = self._ep_task
        self.episode_sources = self._ep_source
        self.episode_successes = self._ep_success
        self.frame_labels = {
            "label": self._label,
            "int": self._int,
            "eff": self._eff,
            "term": self._term,
            "reward": self._reward,
            "ret": self._ret,
        }

    # --- SampleStreams protocol ---
    def size(self, stream: str) -> int:
        return len(self._anchors_of(stream))

    def _anchors_of(self, stream: str) -> np.ndarray:
        if stream not in self.anchors:
            raise KeyError(f"stream: unknown stream {stream!r}; valid: {list(STREAM_NAMES)}")
        return self.anchors[stream]

    def sample(self, stream: str, n: int, rng: np.random.Generator) -> dict[str, Any]:
        """`n` windows drawn uniformly with replacement from `stream`, collated."""
        anchors = self._anchors_of(stream)
        if len(anchors) == 0:
            raise ValueError(f"stream {stream!r} is empty")
        picks = anchors[rng.integers(0, len(anchors), size=n)]
        return gather_windows(self, picks)

    def dims(self) -> dict[str, int]:
        return {
            "proprio_dim": self.store.dim(F.PROPRIO),
            "action_dim": self.store.dim(F.ACTION),
            "env_state_dim": self.store.dim(F.ENV_STATE) if self.has_env_state else 0,
        }

    def norm_stats(self) -> NormStats:
        """normalize.NormStats over the included episodes (proprio, action, env_state)."""
        return NormStats({key: FeatureStats(**stats) for key, stats in self.norm_arrays().items()})

    def norm_arrays(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-dim mean / std / min / max of proprio, action (and env_state), streamed."""
        keys = [F.PROPRIO, F.ACTION] + ([F.ENV_STATE] if self.has_env_state else [])
        out = {}
        for key in keys:
            acc = _Moments()
            for i in self.episode_ids:
                acc.add(np.asarray(self.store.array(key, i), dtype=np.float64))
            out[key] = acc.result(key)
        return out

    def manifest(self) -> dict[str, Any]:
        eps = [self.store.episodes[i] for i in self.episode_ids]
        return {
            "store": str(self.store.root),
            "store_revision": self.store.revision,
            "episodes": len(eps),
            "frames": int(self._starts[-1]),
            "rounds": sorted({int(e["round"]) for e in eps}),
            "stream_sizes": {k: int(len(v)) for k, v in self.anchors.items()},
            "credit_mode": self.cfg.credit_mode,
            "episode_uids": [int(e["uid"]) for e in eps],
        }

    @property
    def num_frames(self) -> int:
        """Frames of every included episode (global frame ids 0 .. num_frames - 1)."""
        return int(self._starts[-1])

    def frames_of(self, k: int) -> range:
        """The global frame ids of included episode k (store episode `episode_ids[k]`)."""
        return range(int(self._starts[k]), int(self._starts[k + 1]))

    # --- one window ---
    def locate(self, frame: int) -> tuple[int, int]:
        """Global frame id -> (episode index in this stream set, t)."""
        k = int(np.searchsorted(self._starts, frame, side="right") - 1)
        return k, frame - int(self._starts[k])

    def window(self, frame: int) -> dict[str, Any]:
        """The sample anchored at global frame id `frame` (see module docstring)."""
        k, t = self.locate(frame)
        i = self.episode_ids[k]
        store, cfg = self.store, self.cfg
        t_len = int(self._starts[k + 1] - self._starts[k])
        t_next = min(t + cfg.next_stride, t_len - 1)
        out: dict[str, Any] = {}
        for prefix, tt in ((F.OBS_PREFIX, t), (F.NEXT_OBS_PREFIX, t_next)):
            out[prefix + F.PROPRIO] = np.array(store.array(F.PROPRIO, i)[tt])
            if self.has_env_state:
                out[prefix + F.ENV_STATE] = np.array(store.array(F.ENV_STATE, i)[tt])
            for cam in self.cameras:
                img = np.array(store.array(F.image_key(cam), i)[tt])
                if cfg.image_size is not None and img.shape[0] != cfg.image_size:
                    img = cv2.resize(
                        img, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_AREA
                    )
                out[prefix + F.image_key(cam)] = img
        horizon = cfg.horizon
        end = min(t + horizon, t_len)
        act = np.asarray(store.array(F.ACTION, i)[t:end])
        actions = np.zeros((horizon, act.shape[1]), dtype=np.float32)
        actions[: end - t] = act
        valid = np.zeros(horizon, dtype=bool)
        valid[: end - t] = True
        human = np.asarray(store.array(F.HUMAN, i)[t:end])
        mask = np.zeros((horizon, act.shape[1]), dtype=bool)
        arm_dims = self.arm_dims or act.shape[1] // max(human.shape[1], 1)
        for a in range(human.shape[1]):
            mask[: end - t, a * arm_dims : (a + 1) * arm_dims] = human[:, a : a + 1]
        g = frame
        out.update(
            {
                F.TASK: self.tasks[self._ep_task[k]],
                F.TASK_ID: np.int64(self._ep_task[k]),
                F.ACTIONS: actions,
                F.ACTION_VALID: valid,
                F.INTERVENTION_MASK: mask,
                F.SOURCE: np.int64(self._ep_source[k]),
                F.OUTCOME_LABEL: np.float32(self._label[g]),
                F.INTERVENTION_WINDOW: np.bool_(self._int[g]),
                F.EFFICIENCY_TARGET: np.bool_(self._eff[g]),
                F.TERMINAL_SUCCESS: np.bool_(self._term[g]),
                F.EPISODE_SUCCESS: np.bool_(self._ep_success[k]),
                F.EPISODE_DONE: np.bool_(t == t_len - 1),
                F.REWARD: np.float32(self._reward[g]),
                F.MC_RETURN: np.float32(self._ret[g]),
                F.STEPS_TO_END: np.int64(t_len - 1 - t),
                F.EPISODE_INDEX: np.int64(k),
                F.FRAME_INDEX: np.int64(t),
                F.MODEL_INDEX: np.int64(store.array(F.MODEL_INDEX, i)[t]),
            }
        )
        return out


class _Moments:
    """Streaming per-dim mean / variance (Chan et al. merge) and min / max."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        x = x.reshape(len(x), -1)
        if len(x) == 0:
            return
        mean, m2 = x.mean(0), ((x - x.mean(0)) ** 2).sum(0)
        if self.mean is None:
            self.n, self.mean, self.m2 = len(x), mean, m2
            self.lo, self.hi = x.min(0), x.max(0)
            return
        n = self.n + len(x)
        delta = mean - self.mean
        self.mean = self.mean + delta * len(x) / n
        self.m2 = self.m2 + m2 + delta**2 * self.n * len(x) / n
        self.n = n
        self.lo, self.hi = np.minimum(self.lo, x.min(0)), np.maximum(self.hi, x.max(0))

    def result(self, key: str) -> dict[str, np.ndarray]:
        if self.mean is None:
            raise ValueError(f"{key}: no frames to compute normalisation statistics from")
        return {
            "mean": self.mean.astype(np.float32),
            "std": np.sqrt(self.m2 / self.n).astype(np.float32),
            "min": self.lo.astype(np.float32),
            "max": self.hi.astype(np.float32),
        }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch: tensors with a leading B axis; `task` a list of str."""
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], str):
            out[key] = values
        else:
            out[key] = torch.from_numpy(np.stack(values))
    return out


class WindowDataset(Dataset):
    """A torch Dataset over one stream's anchors (use a RandomSampler, any num_workers)."""

    def __init__(self, streams: WindowStreams, stream: str) -> None:
        self.streams = streams
        self.anchors = streams._anchors_of(stream)

    def __len__(self) -> int:
        return len(self.anchors)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.streams.window(int(self.anchors[idx]))


def stream_config_for(cfg: Any, round_index: int) -> StreamConfig:
    """The window / credit settings a TrainConfig implies."""
    method = cfg.method_config()
    model = cfg.model_config()
    picks_epsilon = getattr(method, "gate", "") == "recap" and cfg.recap_epsilon is None
    holds_out = picks_epsilon or getattr(method, "train_critic", False)
    return StreamConfig(
        horizon=model.horizon,
        credit_mode=method.credit_assignment,
        gamma=cfg.gamma,
        failure_cost=cfg.failure_penalty,
        cameras=tuple(model.cameras),
        image_size=model.image_size if model.cameras else None,
        heldout_fraction=HELDOUT_FRACTION if holds_out else 0.0,
        max_round=round_index,
    )


def open_streams(data_root: Path | str, round_index: int, cfg: Any) -> WindowStreams:
    """Streams over every episode of rounds <= round_index in the store at `data_root`."""
    return WindowStreams(EpisodeStore(data_root), stream_config_for(cfg, round_index))
