"""Episode bookkeeping: start / end / relabel, episode ids, the sidecar metadata.

Pure Python (no rclpy). The episode manager node wraps it behind the StartEpisode / EndEpisode
services and publishes what it returns as /episode/events; the recorder turns those events into
one bag + sidecar per episode (habc_core.contract). One episode at a time.

    mgr = EpisodeManager(EpisodeManagerConfig(robot="arx_x5_bimanual_sim", control_hz=30.0))
    r = mgr.start("put the marker in the box", "rollout", round_index=0, now_ns=t0)
    mgr.note_authority(arbiter.snapshot())   # marks the episode intervened on any HUMAN
    r = mgr.end("success", now_ns=t1)        # r.meta: the EpisodeMeta for the sidecar
    r = mgr.relabel(r.episode_id, "failure") # operator correction after the fact
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from habc_control.authority import Authority
from habc_core.contract import OUTCOMES, SOURCES, EpisodeMeta, make_episode_id


@dataclass(frozen=True)
class EpisodeManagerConfig:
    robot: str = "arx_x5_bimanual"
    control_hz: float = 30.0
    t_max_steps: int = 900
    id_prefix: str = "ep"

    def __post_init__(self) -> None:
        if not self.robot:
            raise ValueError(f"robot: must be non-empty, got {self.robot!r}")
        if not (0.0 < self.control_hz < 10_000.0):
            raise ValueError(
                f"control_hz: expected 0 < control_hz < 10000, got {self.control_hz!r}"
            )
        if self.t_max_steps < 1:
            raise ValueError(f"t_max_steps: expected >= 1, got {self.t_max_steps!r}")


@dataclass(frozen=True)
class EpisodeResult:
    accepted: bool
    episode_id: str
    message: str
    meta: EpisodeMeta | None = None  # START: outcome "unknown", end_ns = start_ns


@dataclass
class _Active:
    episode_id: str
    task: str
    source: str
    round: int
    model_index: int
    start_ns: int
    intervened: bool = False


class EpisodeManager:
    def __init__(self, config: EpisodeManagerConfig | None = None) -> None:
        self.config = config or EpisodeManagerConfig()
        self._active: _Active | None = None
        self._finished: dict[str, EpisodeMeta] = {}
        self._last_id = ""

    @property
    def active(self) -> bool:
        return self._active is not None

    @property
    def episode_id(self) -> str:
        return self._active.episode_id if self._active else ""

    def finished(self, episode_id: str) -> EpisodeMeta | None:
        return self._finished.get(episode_id)

    def start(
        self,
        task: str,
        source: str,
        round_index: int,
        now_ns: int,
        model_index: int = -1,
    ) -> EpisodeResult:
        if self._active is not None:
            return EpisodeResult(
                False, self._active.episode_id, "an episode is already running; end it first"
            )
        if not task.strip():
            return EpisodeResult(False, "", "task: an empty prompt cannot name an episode")
        if source not in SOURCES:
            return EpisodeResult(False, "", f"source: {source!r} is not one of {list(SOURCES)}")
        if round_index < 0:
            return EpisodeResult(False, "", f"round: must be >= 0, got {round_index}")
        episode_id = make_episode_id(now_ns, prefix=self.config.id_prefix)
        n = 1
        while episode_id == self._last_id or episode_id in self._finished:
            episode_id = make_episode_id(now_ns, prefix=self.config.id_prefix, suffix=str(n))
            n += 1
        self._last_id = episode_id
        self._active = _Active(episode_id, task, source, round_index, model_index, now_ns)
        return EpisodeResult(True, episode_id, "started", self._meta("unknown", now_ns))

    def note_authority(self, authority: Mapping[str, Authority]) -> None:
        if self._active is not None and any(a == Authority.HUMAN for a in authority.values()):
            self._active.intervened = True

    def note_model_index(self, model_index: int) -> None:
        """The actor that acts now (policy node reports it with every chunk)."""
        if self._active is not None and model_index >= 0:
            self._active.model_index = int(model_index)

    def end(self, outcome: str, now_ns: int, episode_id: str = "") -> EpisodeResult:
        """End the running episode; with the id of a finished one this is a relabel."""
        if outcome not in OUTCOMES:
            return EpisodeResult(
                False, episode_id, f"outcome: {outcome!r} not in {list(OUTCOMES)}"
            )
        if episode_id and (self._active is None or episode_id != self._active.episode_id):
            return self.relabel(episode_id, outcome)
        if self._active is None:
            return EpisodeResult(False, "", "no episode is running")
        meta = self._meta(outcome, max(now_ns, self._active.start_ns))
        self._finished[meta.episode_id] = meta
        self._active = None
        return EpisodeResult(True, meta.episode_id, "ended", meta)

    def relabel(self, episode_id: str, outcome: str) -> EpisodeResult:
        if outcome not in OUTCOMES:
            return EpisodeResult(
                False, episode_id, f"outcome: {outcome!r} not in {list(OUTCOMES)}"
            )
        meta = self._finished.get(episode_id)
        if meta is None:
            return EpisodeResult(False, episode_id, f"unknown finished episode {episode_id!r}")
        meta = meta.replace(outcome=outcome)
        self._finished[episode_id] = meta
        return EpisodeResult(True, episode_id, "relabeled", meta)

    def _meta(self, outcome: str, end_ns: int) -> EpisodeMeta:
        a = self._active
        assert a is not None  # internal: only called with an active episode
        return EpisodeMeta(
            episode_id=a.episode_id,
            task=a.task,
            source=a.source,
            outcome=outcome,
            round=a.round,
            model_index=a.model_index,
            robot=self.config.robot,
            control_hz=float(self.config.control_hz),
            t_max_steps=self.config.t_max_steps,
            start_ns=a.start_ns,
            end_ns=end_ns,
            intervened=a.intervened,
        )
