"""An episode's START event, written the same way by every bag writer's caller.

The recorder (from an EpisodeEvent), the DDS-free collector and the synthesiser (from an
EpisodeMeta) all open a bag with it; the reader takes the episode's identity from it when a
sidecar is missing, so the fields must not drift between writers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from habc_core.contract import EVENT_START

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


def write_start_event(writer: EpisodeBagWriter, start: EpisodeStart, t_ns: int) -> None:
    """START on /episode/events at `t_ns` (the episode's start time)."""
    writer.write_event(
        EVENT_START,
        t_ns,
        episode_id=start.episode_id,
        task=start.task,
        source=start.source,
        round_index=start.round,
        model_index=start.model_index,
    )
