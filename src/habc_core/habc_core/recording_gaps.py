"""How long a bag's recorder went without an arm's state: the largest receive-time gap of each
joint_states topic, where it fell, and how many gaps exceeded a threshold.

Bag timestamps are receive times (as `ros2 bag record`'s), so a recorder that is starved (a busy
process, a slow disk) logs the arms' state in bursts; past the converter's staleness bound
(0.25 s) the episode is refused. scripts/bag_gaps.py prints this for bags; bench/bench_graph.py
reports it per run.
"""

from __future__ import annotations

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


def joint_state_gaps(bag_dir: Path | str, over_ms: float = 100.0) -> list[TopicGaps]:
    """Per joint_states topic of the bag (sorted by name), its receive-time gaps."""
    times: dict[str, list[int]] = {}
    start = None
    with open_bag(bag_dir) as contents:
        for topic, _type, log_ns, _msg in contents.messages():
            start = log_ns if start is None else min(start, log_ns)
            if topic.endswith("/joint_states"):
                times.setdefault(topic, []).append(log_ns)
    out = []
    for topic, stamps in sorted(times.items()):
        stamps.sort()
        gaps = [(b - a) / 1e6 for a, b in zip(stamps, stamps[1:], strict=False)] or [0.0]
        worst = max(range(len(gaps)), key=gaps.__getitem__)
        out.append(
            TopicGaps(
                topic,
                len(stamps),
                gaps[worst],
                (stamps[worst] - (start or 0)) / 1e9,
                sum(g > over_ms for g in gaps),
            )
        )
    return out
