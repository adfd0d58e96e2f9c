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

from arx_x5_driver.sim.config import ExpertConfig
from arx_x5_driver.sim.env import PouchEnv
from arx_x5_driver.sim.expert import ArmScript, hand_action, make_hand
from arx_x5_driver.sim.model import ARMS

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
        self._next_tick = -1

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self._hands = {}
        self._next_tick = -1

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        if self.env.tick != self._next_tick:
            # The last chunk was not run to its end (takeover, new episode): re-anchor the hands
            # on the arms' current poses.
            self._hands = {arm: make_hand(arm, self.env, self.cfg, self.rng) for arm in ARMS}
        cols, keep = [], {}
        for arm in ARMS:
            hand = self._hands[arm]
            rows = []
            for k in range(self.horizon):
                if k == self.execute_steps:
                    keep[arm] = {f: copy.copy(getattr(hand, f)) for f in _STATE_FIELDS}
                rows.append(hand_action(self.env, hand))
            for f, v in keep[arm].items():
                setattr(hand, f, v)
            cols.append(np.asarray(rows))
        self._next_tick = self.env.tick + self.execute_steps
        actions = np.concatenate(cols, axis=1).astype(np.float32)
        return {"actions": actions, "model_index": self.model_index}


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
