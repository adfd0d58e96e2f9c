"""Action-chunk execution: run `execute_steps` (25) of each H (50)-step chunk, then re-plan.

Pure Python (no rclpy): the policy node and the DDS-free collector share it.

Synchronous use (collector; inference inside the tick)::

    ex = ChunkExecutor(ChunkExecutorConfig(horizon=50, execute_steps=25))
    ex.on_authority(arbiter.snapshot())          # every tick: HUMAN/HOLD -> POLICY drops the chunk
    if ex.should_request():
        token = ex.begin_request()
        ex.load(policy.infer(obs)["actions"], token, model_index=k)
    step = ex.step()                              # ChunkStep or None (nothing to run: hold)

Asynchronous use (policy node; inference in a worker thread): `begin_request()` on the tick,
`load(actions, token)` when the worker returns. Steps executed while inference ran are skipped in
the new chunk (its first row belongs to the observation it was computed from). A chunk requested
before `invalidate()` (e.g. before a takeover) is refused by `load()`: after HUMAN -> POLICY the
policy always starts from a fresh chunk computed from the current observation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from habc_control.authority import Authority


@dataclass(frozen=True)
class ChunkExecutorConfig:
    horizon: int = 50
    execute_steps: int = 25
    # Ask for the next chunk when this many executable steps remain (0: only when exhausted).
    prefetch_steps: int = 0

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon: expected >= 1, got {self.horizon!r}")
        if not (1 <= self.execute_steps <= self.horizon):
            raise ValueError(
                f"execute_steps: expected 1 <= execute_steps <= horizon ({self.horizon}), "
                f"got {self.execute_steps!r}"
            )
        if not (0 <= self.prefetch_steps < self.execute_steps):
            raise ValueError(
                f"prefetch_steps: expected 0 <= prefetch_steps < execute_steps, "
                f"got {self.prefetch_steps!r}"
            )


@dataclass(frozen=True)
class ChunkStep:
    action: np.ndarray  # (D,) float32 row of the chunk
    chunk_id: int
    index: int  # row index inside the chunk (0 .. execute_steps-1 + skipped rows)
    model_index: int


@dataclass(frozen=True)
class RequestToken:
    executed: int  # rows executed (from any chunk) when the observation was taken
    generation: int  # bumped by invalidate(): older tokens are stale


class ChunkExecutor:
    """Feeds one row per control tick from the current chunk; says when a new chunk is needed."""

    def __init__(self, config: ChunkExecutorConfig | None = None) -> None:
        self.config = config or ChunkExecutorConfig()
        self._chunk: np.ndarray | None = None
        self._chunk_id = -1
        self._model_index = -1
        self._cursor = 0
        self._end = 0  # rows [cursor, end) of the chunk may still run
        self._tick = 0
        self._executed = 0
        self._generation = 0
        self._pending: RequestToken | None = None
        self._next_chunk_id = 0
        self._prev_authority: dict[str, Authority] = {}
        self._active = True  # any arm under POLICY
        self.fresh_chunks_after_takeover = 0
        self.rejected_chunks = 0  # chunks refused for non-finite rows

    # --- state ---
    @property
    def remaining(self) -> int:
        return max(self._end - self._cursor, 0) if self._chunk is not None else 0

    @property
    def request_pending(self) -> bool:
        return self._pending is not None

    @property
    def chunk_id(self) -> int:
        return self._chunk_id

    @property
    def tick(self) -> int:
        return self._tick

    def should_request(self) -> bool:
        """True when the caller should start inference on the current observation now."""
        if not self._active or self._pending is not None:
            return False
        return self.remaining <= self.config.prefetch_steps

    # --- inputs ---
    def begin_request(self) -> RequestToken:
        self._pending = RequestToken(self._executed, self._generation)
        return self._pending

    def load(
        self,
        actions: np.ndarray,
        token: RequestToken,
        model_index: int = -1,
        chunk_id: int | None = None,
    ) -> bool:
        """Install a chunk computed for `token`. Returns False (and drops it) when stale or when
        a row to be executed is not finite (counted in `rejected_chunks`)."""
        if token != self._pending:
            return False  # superseded or invalidated (takeover since the observation)
        self._pending = None
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[0] < self.config.execute_steps:
            raise ValueError(
                f"actions: expected (H>={self.config.execute_steps}, D), got {actions.shape}"
            )
        if not np.all(np.isfinite(actions[: self.config.execute_steps])):
            # NaN / inf from the model never reach the mux: the chunk is dropped, the next
            # tick asks again, and a policy that keeps failing goes silent, so the mux holds.
            self.rejected_chunks += 1
            return False
        # Rows the robot ran while inference was in flight: the new chunk's first rows are
        # already in the past. Ticks spent holding (no row) do not count: the arm did not move.
        late = self._executed - token.executed
        self._chunk = actions
        self._cursor = min(late, self.config.execute_steps)
        self._end = self.config.execute_steps
        self._model_index = int(model_index)
        self._chunk_id = self._next_chunk_id if chunk_id is None else int(chunk_id)
        self._next_chunk_id = max(self._next_chunk_id, self._chunk_id) + 1
        return True

    def cancel_request(self) -> None:
        """The inference attempt failed: allow a new request."""
        self._pending = None

    def invalidate(self) -> None:
        """Drop the current chunk and any in-flight request: the next step needs a fresh chunk."""
        self._chunk = None
        self._cursor = self._end = 0
        self._pending = None
        self._generation += 1

    def on_authority(self, authority: Mapping[str, Authority]) -> bool:
        """Track authority; returns True when a HUMAN/HOLD -> POLICY switch dropped the chunk."""
        regained = any(
            a == Authority.POLICY and self._prev_authority.get(arm, Authority.POLICY) != a
            for arm, a in authority.items()
        )
        self._prev_authority = {arm: Authority(a) for arm, a in authority.items()}
        self._active = any(a == Authority.POLICY for a in authority.values())
        if regained:
            self.invalidate()
            self.fresh_chunks_after_takeover += 1
        elif not self._active:
            # Nobody runs the policy: a chunk kept now would be stale when it resumes.
            self.invalidate()
        return regained

    def step(self) -> ChunkStep | None:
        """The next row to execute this tick, or None when there is none (caller holds)."""
        self._tick += 1
        if self._chunk is None or self._cursor >= self._end:
            return None
        row = self._chunk[self._cursor]
        out = ChunkStep(row.copy(), self._chunk_id, self._cursor, self._model_index)
        self._cursor += 1
        self._executed += 1
        return out
