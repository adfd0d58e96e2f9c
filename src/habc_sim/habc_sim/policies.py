"""Simulator-side stand-ins for a trained policy, behind the node's `infer(obs) -> dict` boundary.

* `ExpertChunkPolicy`: the scripted expert, chunked like a VLA (it plans H steps from the state it
  sees at inference and the executor runs 25 of them open loop). With a poor `ExpertConfig` it is
  the imperfect policy whose failures the intervention model reacts to.
* `ReplayPolicy`: replays a recorded action sequence open loop (the "naive policy" that shows the
  task needs feedback: the marker is somewhere else on a new seed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from habc_sim.config import ExpertConfig
from habc_sim.env import PouchEnv
from habc_sim.expert import ArmScript, hand_action, make_hand
from habc_sim.model import ARMS

_STATE_FIELDS = ("pos", "yaw", "grip", "label", "pending", "pending_ticks", "plan", "idx", "held")


class ExpertChunkPolicy:
    def __init__(
        self,
        env: PouchEnv,
        cfg: ExpertConfig,
        seed: int,
        horizon: int = 50,
        execute_steps: int = 25,
        model_index: int = 0,
    ) -> None:
        self.env = env
        self.cfg = cfg
        self.horizon = horizon
        self.execute_steps = execute_steps
        self.model_index = model_index
        self.rng = np.random.default_rng(seed)
        self._hands: dict[str, ArmScript] = {}
        self._chunk_tick = -1  # env tick of the last chunk's first row
        self._snapshots: list[dict[str, dict[str, Any]]] = []  # hands' state per row

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self._hands = {}
        self._chunk_tick = -1
        self._snapshots = []

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        # The next request may come before this chunk's execute_steps ran out (prefetch) and its
        # first rows may be skipped (inference latency): keep the hands' state at every row, and
        # continue the plan from the row of the tick the next request is made at. Anything else
        # (a takeover dropped the chunk, a new episode) re-anchors the hands on the current poses.
        offset = self.env.tick - self._chunk_tick
        if 0 <= offset < len(self._snapshots):
            for arm, state in self._snapshots[offset].items():
                for f, v in state.items():
                    setattr(self._hands[arm], f, v)
        else:
            self._hands = {arm: make_hand(arm, self.env, self.cfg, self.rng) for arm in ARMS}
        self._chunk_tick = self.env.tick
        self._snapshots = []
        cols: dict[str, list] = {arm: [] for arm in ARMS}
        # Every row: a late next request (inference slower than the chunk) starts past row 25.
        for _k in range(self.horizon):
            self._snapshots.append(
                {
                    arm: {f: copy.copy(getattr(self._hands[arm], f)) for f in _STATE_FIELDS}
                    for arm in ARMS
                }
            )
            for arm in ARMS:
                cols[arm].append(hand_action(self.env, self._hands[arm]))
        actions = np.concatenate([np.asarray(cols[arm]) for arm in ARMS], axis=1)
        return {"actions": actions.astype(np.float32), "model_index": self.model_index}


class ReplayPolicy:
    """Open-loop replay of `actions` (T, D) indexed by the env's tick."""

    def __init__(
        self,
        actions: np.ndarray,
        clock: Callable[[], int],
        horizon: int = 50,
        model_index: int = 0,
    ) -> None:
        self.actions = np.asarray(actions, dtype=np.float32)
        if self.actions.ndim != 2 or len(self.actions) == 0:
            raise ValueError(f"actions: expected a non-empty (T, D), got {self.actions.shape}")
        self.clock = clock
        self.horizon = horizon
        self.model_index = model_index

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        t = self.clock()
        idx = np.clip(np.arange(t, t + self.horizon), 0, len(self.actions) - 1)
        return {"actions": self.actions[idx], "model_index": self.model_index}
