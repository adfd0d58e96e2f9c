"""How long a bag's recorder went without an arm's state: the largest receive-time gap of each
joint_states topic, where it fell, and how many gaps exceeded a threshold.

Bag timestamps are receive times (as `ros2 bag record`'s), so a recorder that is starved (a busy
process, a slow disk) logs the arms' state in bursts; past the converter's staleness bound
(0.25 s) the episode is refused. scripts/bag_gaps.py prints this for bags; bench/bench_graph.py
reports it per run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from habc_core.bag_reader import open_bag


@dataclass(frozen=True)
class TopicGaps:
    topic: str
    messages: int
    largest_ms: float
    at_s: float  # seconds after the bag's first recorded message
    over: int  # gaps longer than the threshold


def is_joint_states(topic: str) -> bool:
    return topic.endswith("/joint_states")  # any arm, any namespace


def log_times(
    bag_dir: Path | str, keep: Callable[[str], bool]
) -> tuple[int, dict[str, list[int]]]:
    """The bag's first log time and, per topic that `keep` accepts, its sorted log times."""
    times: dict[str, list[int]] = {}
    start = None
    with open_bag(bag_dir) as contents:
        for topic, _type, log_ns, _msg in contents.messages():
            start = log_ns if start is None else min(start, log_ns)
            if keep(topic):
                times.setdefault(topic, []).append(log_ns)
    for stamps in times.values():
        stamps.sort()
    return start or 0, times


def gaps(topic: str, stamps: list[int], start: int, over_ms: float = 100.0) -> TopicGaps:
    """The receive-time gaps of one topic's sorted log times."""
    between = [(b - a) / 1e6 for a, b in zip(stamps, stamps[1:], strict=False)] or [0.0]
    worst = max(range(len(between)), key=between.__getitem__)
    return TopicGaps(
        topic,
        len(stamps),
        between[worst],
        (stamps[worst] - start) / 1e9,
        sum(g > over_ms for g in between),
    )


def joint_state_gaps(bag_dir: Path | str, over_ms: float = 100.0) -> list[TopicGaps]:
    """Per joint_states topic of the bag (sorted by name), its receive-time gaps."""
    start, times = log_times(bag_dir, is_joint_states)
    return [gaps(topic, stamps, start, over_ms) for topic, stamps in sorted(times.items())]
