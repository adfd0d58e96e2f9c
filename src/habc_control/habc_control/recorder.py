"""Episode recorder core: /episode/events + raw messages -> one bag directory + sidecar.

Pure Python (no rclpy): the recorder node hands it raw CDR bytes (rclpy.serialization) and the
decoded episode events; `habc_core.bag_writer.EpisodeBagWriter` writes the bag.

    rec = EpisodeRecorder(RecorderConfig(data_root="data", robot="arx_x5_bimanual_sim"))
    rec.on_event(EpisodeEventData(START, t0, "ep_...", "task", "rollout"))
    rec.on_message("/left_arm/command", "habc_interfaces/msg/ArmCommand", raw, t)
    rec.on_authority({"left": Authority.HUMAN, ...})  # marks the episode intervened
    rec.on_event(EpisodeEventData(END, t1, "ep_...", ..., outcome="success"))  # bag + sidecar

Messages outside an episode are dropped, except the latest /control_authority message, which is
written at the start of every bag so each episode knows who commanded at t = 0 (the authority
topic is latched and changes rarely).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from habc_control.authority import Authority
from habc_core.bag_writer import EpisodeBagWriter
from habc_core.contract import (
    AUTHORITY_TOPIC,
    CONTROL_AUTHORITY_TYPE,
    EVENT_END,
    EVENT_RELABEL,
    EVENT_START,
    EpisodeMeta,
    episode_dir,
    read_sidecar,
    write_sidecar,
)
from habc_core.episode_events import write_start_event

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecorderConfig:
    data_root: str = "data"
    robot: str = "arx_x5_bimanual"
    control_hz: float = 30.0
    t_max_steps: int = 900
    storage: str = "mcap"

    def __post_init__(self) -> None:
        if not self.data_root:
            raise ValueError(f"data_root: must be non-empty, got {self.data_root!r}")
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage: expected 'mcap' or 'sqlite3', got {self.storage!r}")


@dataclass(frozen=True)
class EpisodeEventData:
    event: int
    stamp_ns: int
    episode_id: str
    task: str
    source: str
    outcome: str = ""
    round: int = 0
    model_index: int = -1


class EpisodeRecorder:
    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self._writer: EpisodeBagWriter | None = None
        self._start: EpisodeEventData | None = None
        self._intervened = False
        self._last_authority: tuple[bytes, int] | None = None
        self._dirs: dict[str, Path] = {}
        self.finished: list[Path] = []

    @property
    def recording(self) -> bool:
        return self._writer is not None

    @property
    def bag_dir(self) -> Path | None:
        return self._writer.bag_dir if self._writer else None

    def on_event(self, ev: EpisodeEventData, raw: bytes | None = None, msgtype: str = "") -> None:
        """Handle START / END / RELABEL; `raw` (the event's CDR) is recorded in the bag too."""
        if ev.event == EVENT_START:
            if self._writer is not None:
                _LOG.error(
                    "START %s while %s records: closing it unfinished",
                    ev.episode_id,
                    self._start.episode_id if self._start else "?",
                )
                self._writer.close()
            path = episode_dir(self.config.data_root, ev.task, ev.round, ev.episode_id)
            self._writer = EpisodeBagWriter(path, storage=self.config.storage).open()
            self._start = ev
            self._intervened = False
            self._dirs[ev.episode_id] = path
            if raw is None:
                write_start_event(self._writer, ev, ev.stamp_ns)
            else:
                self._writer.write_raw("/episode/events", msgtype, raw, ev.stamp_ns)
            if self._last_authority is not None:
                data, _ = self._last_authority
                self._writer.write_raw(AUTHORITY_TOPIC, CONTROL_AUTHORITY_TYPE, data, ev.stamp_ns)
        elif ev.event == EVENT_END:
            if self._writer is None or self._start is None:
                _LOG.warning("END %s with no episode recording: ignored", ev.episode_id)
                return
            if ev.episode_id and ev.episode_id != self._start.episode_id:
                _LOG.warning("END %s does not match %s", ev.episode_id, self._start.episode_id)
                return
            s = self._start
            meta = EpisodeMeta(
                episode_id=s.episode_id,
                task=s.task,
                source=s.source,
                outcome=ev.outcome or "unknown",
                round=s.round,
                model_index=max(s.model_index, ev.model_index),
                robot=self.config.robot,
                control_hz=float(self.config.control_hz),
                t_max_steps=self.config.t_max_steps,
                start_ns=s.stamp_ns,
                end_ns=max(ev.stamp_ns, s.stamp_ns),
                intervened=self._intervened,
            )
            if raw is None:
                self._writer.finish(meta, ev.stamp_ns)
            else:
                self._writer.write_raw("/episode/events", msgtype, raw, ev.stamp_ns)
                self._writer.close(meta)
            self.finished.append(self._writer.bag_dir)
            self._writer = None
            self._start = None
        elif ev.event == EVENT_RELABEL:
            self.relabel(ev.episode_id, ev.outcome, ev.task, ev.round)

    def relabel(self, episode_id: str, outcome: str, task: str = "", round_index: int = 0) -> bool:
        path = self._dirs.get(episode_id)
        if path is None and task:
            path = episode_dir(self.config.data_root, task, round_index, episode_id)
        meta = read_sidecar(path) if path is not None and path.is_dir() else None
        if meta is None:
            _LOG.error("RELABEL %s: no finished episode with a sidecar found", episode_id)
            return False
        write_sidecar(path, meta.replace(outcome=outcome))
        return True

    def on_authority(self, authority: Mapping[str, Authority], raw: bytes, stamp_ns: int) -> None:
        self._last_authority = (bytes(raw), stamp_ns)
        if self._writer is not None:
            if any(Authority(a) == Authority.HUMAN for a in authority.values()):
                self._intervened = True
            self._writer.write_raw(AUTHORITY_TOPIC, CONTROL_AUTHORITY_TYPE, raw, stamp_ns)

    def on_message(self, topic: str, msgtype: str, raw: bytes, stamp_ns: int) -> bool:
        if self._writer is None:
            return False
        self._writer.write_raw(topic, msgtype, raw, stamp_ns)
        return True

    def close(self) -> None:
        """Shutdown mid-episode: close the bag without a sidecar (reads as unfinished)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
