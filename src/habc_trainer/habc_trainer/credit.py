"""Intervention-aware credit assignment (habc-spec §2) and parent-value rewards (§7).

Pure functions over one episode's authority pattern and outcome. Per-frame outputs (length T):

* `is_human` bool: some arm was under HUMAN authority at t (spec §1 [choice]: any arm);
* `segment_id` int64: index of the maximal run of frames under one controller (0, 1, ...);
* `post_intervention` bool: policy frame after the last human frame of an episode that had one;
* `outcome_label` float32: y in {1, 0} on outcome-labeled frames, NaN elsewhere;
  - intervention_aware: a fully autonomous rollout labels every frame; a rollout with >= 1
    human frame labels only its post-intervention suffix (earlier policy segments stay unlabeled,
    human frames are never labeled); outcome unknown or a demo labels nothing;
  - naive (ablation, Imit-Recap): every frame of a rollout with a known outcome is labeled;
* `intervention_window` bool: rollout only; frames t .. t+window-1 (clipped at T) hold
  >= min_human_steps human frames (D_int). Demos are imitation data in their own right (D_SFT)
  and never count as intervention windows;
* `efficiency_target` bool: supervises V_e: on successful rollouts, the labeled frames plus the
  intervention windows (D_succ = D_auto^succ ∪ D_int^succ);
* `terminal_success` bool: d_t = 1 at the last frame of a successful episode (any source).

Rewards for the parent value head V_psi (spec §7 [choice]): r_t = -1 per step, and r = -C on
the last transition of a failed episode; unknown outcomes get no terminal penalty. The Monte-Carlo
return is R_t = sum_{k>=0} gamma^k r_{t+k}, so that R_t = r_t + gamma R_{t+1} matches the TD form
of y_V; the spec's printed `sum_{k>0}` is read as this (it would drop r_t from its own target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

CreditMode = Literal["intervention_aware", "naive"]
CREDIT_MODES: tuple[str, ...] = ("intervention_aware", "naive")
_OUTCOMES = ("success", "failure", "unknown")
_SOURCES = ("demo", "rollout")


@dataclass(frozen=True)
class CreditLabels:
    """Per-frame credit of one episode; every array has length T (see module docstring)."""

    outcome_label: np.ndarray  # (T,) float32, NaN = unlabeled
    intervention_window: np.ndarray  # (T,) bool
    efficiency_target: np.ndarray  # (T,) bool
    terminal_success: np.ndarray  # (T,) bool
    is_human: np.ndarray  # (T,) bool
    segment_id: np.ndarray  # (T,) int64
    post_intervention: np.ndarray  # (T,) bool

    @property
    def labeled(self) -> np.ndarray:
        """(T,) bool: frames with an outcome label."""
        return ~np.isnan(self.outcome_label)


def _validate(
    human: np.ndarray, outcome: str, source: str, window: int, min_human_steps: int, mode: str
) -> np.ndarray:
    arr = np.asarray(human)
    if arr.dtype != np.bool_:
        raise ValueError(f"human: expected a bool array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"human: expected shape (T, n_arms) with n_arms >= 1, got {arr.shape}")
    if outcome not in _OUTCOMES:
        raise ValueError(f"outcome: {outcome!r} is not one of {list(_OUTCOMES)}")
    if source not in _SOURCES:
        raise ValueError(f"source: {source!r} is not one of {list(_SOURCES)}")
    if mode not in CREDIT_MODES:
        raise ValueError(f"mode: {mode!r} is not one of {list(CREDIT_MODES)}")
    for name, value in (("window", window), ("min_human_steps", min_human_steps)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}: must be an int >= 1, got {value!r}")
    if min_human_steps > window:
        raise ValueError(
            f"min_human_steps: {min_human_steps} exceeds window {window}; no window could qualify"
        )
    return arr


def segment_ids(is_human: np.ndarray) -> np.ndarray:
    """(T,) int64 index of the maximal single-controller run each frame belongs to."""
    if len(is_human) == 0:
        return np.zeros(0, dtype=np.int64)
    changes = np.concatenate([[0], (is_human[1:] != is_human[:-1]).astype(np.int64)])
    return np.cumsum(changes)


def window_counts(is_human: np.ndarray, window: int) -> np.ndarray:
    """(T,) number of human frames in t .. t+window-1, clipped at the episode end."""
    t_len = len(is_human)
    csum = np.concatenate([[0], np.cumsum(is_human, dtype=np.int64)])
    ends = np.minimum(np.arange(t_len) + window, t_len)
    return csum[ends] - csum[:t_len]


def assign_credit(
    human: np.ndarray,
    outcome: str,
    source: str,
    *,
    window: int = 50,
    min_human_steps: int = 10,
    mode: CreditMode = "intervention_aware",
) -> CreditLabels:
    """Decide what the episode's sparse outcome may teach, per frame (spec §2).

    human: (T, n_arms) bool, True where that arm was under HUMAN authority at frame t.
    """
    arr = _validate(human, outcome, source, window, min_human_steps, mode)
    t_len = arr.shape[0]
    is_human = arr.any(axis=1)
    frames = np.arange(t_len)
    success = outcome == "success"

    if is_human.any():
        last_human = int(np.flatnonzero(is_human)[-1])
        post = frames > last_human
    else:
        post = np.zeros(t_len, dtype=bool)

    labeled = np.zeros(t_len, dtype=bool)
    if source == "rollout" and outcome != "unknown":
        if mode == "naive":
            labeled[:] = True
        elif is_human.any():
            labeled = post.copy()
        else:
            labeled[:] = True
    outcome_label = np.full(t_len, np.nan, dtype=np.float32)
    outcome_label[labeled] = 1.0 if success else 0.0

    if source == "rollout":
        int_window = window_counts(is_human, window) >= min_human_steps
    else:
        int_window = np.zeros(t_len, dtype=bool)

    efficiency = (
        (labeled | int_window)
        if (success and source == "rollout")
        else np.zeros(t_len, dtype=bool)
    )
    terminal = np.zeros(t_len, dtype=bool)
    if success and t_len:
        terminal[-1] = True

    return CreditLabels(
        outcome_label=outcome_label,
        intervention_window=int_window,
        efficiency_target=efficiency,
        terminal_success=terminal,
        is_human=is_human,
        segment_id=segment_ids(is_human),
        post_intervention=post,
    )


@dataclass(frozen=True)
class ValueTargets:
    """Per-frame reward r_t and Monte-Carlo return R_t (both (T,) float32)."""

    reward: np.ndarray
    mc_return: np.ndarray


def value_targets(
    t_len: int, outcome: str, *, gamma: float = 0.99, failure_cost: float = 100.0
) -> ValueTargets:
    """r_t = -1 per step; r = -failure_cost (C) on the last transition of a failed episode."""
    if isinstance(t_len, bool) or not isinstance(t_len, int | np.integer) or t_len < 0:
        raise ValueError(f"t_len: must be an int >= 0, got {t_len!r}")
    if outcome not in _OUTCOMES:
        raise ValueError(f"outcome: {outcome!r} is not one of {list(_OUTCOMES)}")
    if not (0.0 <= gamma <= 1.0):
        raise ValueError(f"gamma: must be in [0, 1], got {gamma!r}")
    if not (failure_cost >= 0.0):
        raise ValueError(f"failure_cost: must be >= 0, got {failure_cost!r}")
    reward = np.full(t_len, -1.0, dtype=np.float64)
    if outcome == "failure" and t_len:
        reward[-1] = -failure_cost
    ret = np.zeros(t_len, dtype=np.float64)
    acc = 0.0
    for t in range(t_len - 1, -1, -1):
        acc = reward[t] + gamma * acc
        ret[t] = acc
    return ValueTargets(reward=reward.astype(np.float32), mc_return=ret.astype(np.float32))
