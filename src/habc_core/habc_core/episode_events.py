"""An episode's START and END events, written the same way by every bag writer's caller.

The recorder (from an EpisodeEvent), the DDS-free collector and the synthesiser (from an
EpisodeMeta) all open a bag with it; the reader takes the episode's identity from it when a
sidecar is missing, so the fields must not drift between writers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from habc_core.contract import EVENT_END, EVENT_START

if TYPE_CHECKING:  # rosbags is loaded only by those that write a bag
    from habc_core.bag_writer import EpisodeBagWriter


class EpisodeStart(Protocol):
    """What a START event carries: an EpisodeMeta or a recorder's EpisodeEventData."""

    @property
    def episode_id(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def round(self) -> int: ...
    @property
    def model_index(self) -> int: ...


def write_episode_event(
    writer: EpisodeBagWriter, event: int, t_ns: int, episode: EpisodeStart, outcome: str = ""
) -> None:
    """One event on /episode/events at `t_ns` carrying the episode's identity."""
    writer.write_event(
        event,
        t_ns,
        episode_id=episode.episode_id,
        task=episode.task,
        source=episode.source,
        outcome=outcome,
        round_index=episode.round,
        model_index=episode.model_index,
    )


def write_start_event(writer: EpisodeBagWriter, start: EpisodeStart, t_ns: int) -> None:
    """START at `t_ns` (the episode's start time)."""
    write_episode_event(writer, EVENT_START, t_ns, start)


def write_end_event(writer: EpisodeBagWriter, end: EpisodeStart, t_ns: int, outcome: str) -> None:
    """END with the episode's outcome at `t_ns` (its end time)."""
    write_episode_event(writer, EVENT_END, t_ns, end, outcome)
