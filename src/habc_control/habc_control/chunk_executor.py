"""Action-chunk execution: run `execute_steps` (25) of each H (50)-step chunk, then re-plan.

Pure Python (no rclpy): the policy node and the DDS-free collector share it.

Synchronous use (collector; the chunk lands `inference_latency_ticks` later)::

    ex = ChunkExecutor(ChunkExecutorConfig(horizon=50, execute_steps=25))
    ex.on_authority(arbiter.snapshot())          # every tick: HUMAN/HOLD -> POLICY drops the chunk
    if ex.should_request():
        token = ex.begin_request()
        out = policy.infer({**obs, **ex.request_inputs()})
        ex.load(out["actions"], token, model_index=k, guided=out.get(PREFIX_GUIDED, False))
    step = ex.step()                              # ChunkStep or None (nothing to run: hold)

Asynchronous use (policy node; inference in a worker thread): `begin_request()` on the tick,
`load(actions, token)` when the worker returns. Rows executed while inference ran are skipped in
the new chunk (its row 0 belongs to the observation it was computed from). A chunk requested
before `invalidate()` (e.g. before a takeover) is refused by `load()`: after HUMAN -> POLICY the
policy always starts from a fresh chunk computed from the current observation.

Chunk boundaries (docs/nodes.md, "Chunk boundaries"):
* Real-time chunking (`boundary: rtc`, Black et al. 2025): the request carries the running
  chunk's rows still to come and how many of them will surely run before the new chunk lands
  (the median inference latency of the last chunks); a policy that inpaints its chunk on them
  says so (`guided_chunks`). Inpainting keeps the new chunk on the running one's course; what
  it leaves of a jump the cross-fade below takes out (`blend_steps: 0`: inpainting alone).
* `blend`: the first `blend_steps` rows after a switch cross-fade from the old chunk's
  continuation to the new chunk (also what a policy that cannot inpaint gets under `rtc`).
* While a request is in flight the chunk runs on past `execute_steps`, up to its last row, so a
  late inference never stops the arm at row 25. When even the last row would come before the
  next chunk, playback slows (rows are interpolated) so the arm decelerates instead of stopping
  dead; a latency that lasts (the median of the last chunks') also moves the next request
  earlier.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from habc_control.authority import Authority
from habc_core.policy import PREFIX_ACTIONS, PREFIX_FROZEN

BOUNDARIES = ("rtc", "blend", "none")
# Playback this close to a chunk's last row has come to rest there: nothing more to run.
_AT_LAST_ROW = 0.05


@dataclass(frozen=True)
class ChunkExecutorConfig:
    horizon: int = 50
    execute_steps: int = 25
    # Ask for the next chunk when this many executable steps remain (0: only when exhausted);
    # the executor asks earlier when inference has been taking longer than that.
    prefetch_steps: int = 0
    boundary: str = "rtc"
    blend_steps: int = 8  # cross-fade rows (`blend`; `rtc` with a policy that cannot inpaint)
    latency_window: int = 8  # chunks over which the inference latency (median, in ticks) is kept

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
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"boundary: expected one of {BOUNDARIES}, got {self.boundary!r}")
        if self.blend_steps < 0:
            raise ValueError(f"blend_steps: expected >= 0, got {self.blend_steps!r}")
        if self.latency_window < 1:
            raise ValueError(f"latency_window: expected >= 1, got {self.latency_window!r}")


@dataclass(frozen=True)
class ChunkStep:
    action: np.ndarray  # (D,) float32 row of the chunk (interpolated when playback is slowed)
    chunk_id: int
    index: int  # row of the chunk (the lower one when between two rows)
    model_index: int


@dataclass(frozen=True)
class RequestToken:
    executed: float  # rows executed (from any chunk) when the observation was taken
    generation: int  # bumped by invalidate(): older tokens are stale
    serial: int  # one per request: a cancelled request's token never matches a later one


@dataclass(frozen=True)
class _Blend:
    old: np.ndarray  # the chunk switched away from
    old_cursor: float  # its row at the switch
    start: float  # the new chunk's row at the switch


def row_at(chunk: np.ndarray, position: float) -> np.ndarray:
    """The chunk's row at a fractional position (linear between rows; clamped to the last)."""
    last = chunk.shape[0] - 1
    i = min(int(position), last)
    frac = position - i
    if i >= last or frac < 1e-9:
        return chunk[i].copy()
    return ((1.0 - frac) * chunk[i] + frac * chunk[i + 1]).astype(np.float32)


class ChunkExecutor:
    """Feeds one row per control tick from the current chunk; says when a new chunk is needed."""

    def __init__(self, config: ChunkExecutorConfig | None = None) -> None:
        self.config = config or ChunkExecutorConfig()
        self._chunk: np.ndarray | None = None
        self._chunk_id = -1
        self._model_index = -1
        self._cursor = 0.0
        self._end = 0  # rows [cursor, end) run without a request in flight
        self._tick = 0
        self._executed = 0.0
        self._generation = 0
        self._serial = 0
        self._pending: RequestToken | None = None
        self._request_tick = 0
        self._request_inputs: dict[str, Any] = {}
        self._latencies: deque[int] = deque(maxlen=self.config.latency_window)
        self._blend: _Blend | None = None
        self._extend = True  # False after a failed inference, until a chunk lands
        self._next_chunk_id = 0
        self._prev_authority: dict[str, Authority] = {}
        self._active = True  # any arm under POLICY
        self.fresh_chunks_after_takeover = 0
        self.rejected_chunks = 0  # chunks refused for non-finite rows
        self.guided_chunks = 0  # chunks the policy inpainted on the running chunk's prefix
        self.blended_chunks = 0
        self.extended_rows = 0  # rows run past execute_steps while a request was in flight
        self.slowed_ticks = 0  # ticks played slower than one row per tick
        self.starved_ticks = 0  # ticks with a request in flight and no row left at all

    # --- state ---
    @property
    def remaining(self) -> float:
        return max(self._end - self._cursor, 0.0) if self._chunk is not None else 0.0

    @property
    def request_pending(self) -> bool:
        return self._pending is not None

    @property
    def chunk_id(self) -> int:
        return self._chunk_id

    @property
    def tick(self) -> int:
        return self._tick

    @property
    def latency_ticks(self) -> int:
        """Ticks from request to chunk, the median (low) of the last `latency_window` chunks.

        Not the longest: one slow inference (a model's first call, a GC pause) would move every
        request of the next chunks earlier, so chunks landed early and were asked again at once,
        inference ran back to back and starved the rest of the process (the recorder then saw
        150-270 ms gaps in the arms' state, measured; docs/performance.md). A late chunk is
        covered by running on past execute_steps anyway.
        """
        return int(statistics.median_low(self._latencies)) if self._latencies else 0

    def should_request(self) -> bool:
        """True when the caller should start inference on the current observation now."""
        if not self._active or self._pending is not None:
            return False
        return self.remaining <= max(self.config.prefetch_steps, self.latency_ticks)

    # --- inputs ---
    def begin_request(self) -> RequestToken:
        self._serial += 1
        self._pending = RequestToken(self._executed, self._generation, self._serial)
        self._request_tick = self._tick
        self._request_inputs = self._prefix_inputs()
        return self._pending

    def request_inputs(self) -> dict[str, Any]:
        """Observation keys for the request in flight: the running chunk's prefix under `rtc`
        ({} when there is none: the first chunk, after a takeover, other boundaries)."""
        return dict(self._request_inputs)

    def _prefix_inputs(self) -> dict[str, Any]:
        if self.config.boundary != "rtc" or self._chunk is None:
            return {}
        last = self._last()
        if self._cursor > last:
            return {}
        positions = self._cursor + np.arange(int(last - self._cursor) + 1)
        prefix = np.stack([row_at(self._chunk, p) for p in positions]).astype(np.float32)
        expected = self.latency_ticks * min(1.0, self._rate_cap())
        return {PREFIX_ACTIONS: prefix, PREFIX_FROZEN: min(len(prefix), math.ceil(expected))}

    def load(
        self,
        actions: np.ndarray,
        token: RequestToken,
        model_index: int = -1,
        chunk_id: int | None = None,
        guided: bool = False,
    ) -> bool:
        """Install a chunk computed for `token`; `guided`: the policy inpainted it on the
        request's prefix. Returns False (and drops it) when stale or when a row to be executed
        is not finite (counted in `rejected_chunks`)."""
        if token != self._pending:
            return False  # superseded or invalidated (takeover since the observation)
        self._pending = None
        self._latencies.append(self._tick - self._request_tick)
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[0] < self.config.execute_steps:
            raise ValueError(
                f"actions: expected (H>={self.config.execute_steps}, D), got {actions.shape}"
            )
        actions = actions[: self.config.horizon]
        # Every row may run (past execute_steps while the next inference is late).
        if not np.all(np.isfinite(actions)):
            # NaN / inf from the model never reach the mux: the chunk is dropped, the next
            # tick asks again, and a policy that keeps failing goes silent, so the mux holds.
            self.rejected_chunks += 1
            return False
        # Rows the robot ran while inference was in flight: the new chunk's first rows are
        # already in the past. Ticks spent holding (no row) do not count: the arm did not move.
        start = min(self._executed - token.executed, actions.shape[0] - 1.0)
        had_prefix = bool(self._request_inputs)
        self._blend = None
        if self._chunk is not None and self.config.blend_steps and self.config.boundary != "none":
            self._blend = _Blend(self._chunk, self._cursor, start)
            self.blended_chunks += 1
        if guided and had_prefix:
            self.guided_chunks += 1
        self._chunk = actions
        self._extend = True
        self._cursor = start
        self._end = self.config.execute_steps
        self._model_index = int(model_index)
        self._chunk_id = self._next_chunk_id if chunk_id is None else int(chunk_id)
        self._next_chunk_id = max(self._next_chunk_id, self._chunk_id) + 1
        return True

    def cancel_request(self) -> None:
        """The inference attempt failed: allow a new request. Until a chunk lands again the
        running one stops at `execute_steps`: a failing policy goes silent (the mux holds)."""
        self._pending = None
        self._extend = False

    def invalidate(self) -> None:
        """Drop the current chunk and any in-flight request: the next step needs a fresh chunk."""
        self._chunk = None
        self._blend = None
        self._extend = True
        self._cursor, self._end = 0.0, 0
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

    # --- the tick ---
    def _last(self) -> int:
        """Index of the current chunk's last row."""
        return (self.config.horizon if self._chunk is None else self._chunk.shape[0]) - 1

    def _rate_cap(self) -> float:
        """Rows per tick at which a chunk lasts until the next one, latency after latency.

        A chunk landing `late` rows in leaves H - 1 - late rows; run at r rows per tick through
        the d ticks of the next inference, it lands r * d rows into that one: r <= (H - 1) / 2d.
        """
        d = self.latency_ticks
        return math.inf if d == 0 else self._last() / (2.0 * d)

    def _pending_rate(self) -> float:
        """Rows per tick while a request is in flight: one, unless the chunk would run out first.

        Past the expected landing the wait is taken as a quarter of the latency (at least two
        ticks): playback then decays toward the last row, the arm decelerating, not stopping.
        """
        last = self._last()
        d = self.latency_ticks
        expected_wait = d - (self._tick - self._request_tick) + 1
        wait = max(expected_wait, 2.0, 0.25 * d)
        return min(1.0, self._rate_cap(), max(last - self._cursor, 0.0) / wait)

    def step(self) -> ChunkStep | None:
        """The next row to execute this tick, or None when there is none (caller holds)."""
        self._tick += 1
        if self._chunk is None:
            if self._pending is not None:
                self.starved_ticks += 1
            return None
        if self._cursor >= self._end:
            # Past execute_steps only while an inference is in flight (not after one failed),
            # and only while rows are left: a stalled policy ends silent, so the mux holds.
            extending = self._pending is not None and self._extend
            if not extending or self._cursor >= self._last() - _AT_LAST_ROW:
                if self._pending is not None:
                    self.starved_ticks += 1
                return None
            self.extended_rows += 1
        rate = 1.0 if self._pending is None else self._pending_rate()
        if rate < 1.0:
            self.slowed_ticks += 1
        position = self._cursor
        action = row_at(self._chunk, position)
        if self._blend is not None:
            action = self._blended(action, position)
        out = ChunkStep(action, self._chunk_id, int(position), self._model_index)
        after = position + rate
        if self._pending is not None:  # never past the last row: hold it until the chunk lands
            after = min(after, max(position, float(self._last())))
        self._cursor = after
        self._executed += after - position
        return out

    def _blended(self, action: np.ndarray, position: float) -> np.ndarray:
        b = self._blend
        j = position - b.start
        old_position = b.old_cursor + j
        if j >= self.config.blend_steps or old_position > b.old.shape[0] - 1:
            self._blend = None
            return action
        w = (j + 1.0) / (self.config.blend_steps + 1.0)
        return ((1.0 - w) * row_at(b.old, old_position) + w * action).astype(np.float32)
