"""Gaps in what a bag's recorder received: per joint_states topic, the largest log-time gap,
where it fell, and how many exceeded 100 ms (habc_core.recording_gaps); and the time between
the policy's chunks.

    python scripts/bag_gaps.py <bag dir> [<bag dir> ...]

A recorder that misses an arm's state for more than the converter's staleness bound (0.25 s)
makes its episode unconvertible; this shows how close a graph run came.
"""

from __future__ import annotations

import sys
from pathlib import Path

from habc_core.contract import ACTION_CHUNK_TOPIC
from habc_core.recording_gaps import gaps, is_joint_states, log_times


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for bag in map(Path, argv):
        start, times = log_times(bag, lambda t: is_joint_states(t) or t == ACTION_CHUNK_TOPIC)
        chunks = times.pop(ACTION_CHUNK_TOPIC, [])
        for topic, stamps in sorted(times.items()):
            g = gaps(topic, stamps, start)
            print(
                f"{bag.name} {topic}: {g.messages} messages, largest gap {g.largest_ms:.0f} ms "
                f"at {g.at_s:.2f} s, {g.over} over 100 ms"
            )
        between = [round((b - a) / 1e6) for a, b in zip(chunks, chunks[1:], strict=False)]
        print(f"{bag.name} {ACTION_CHUNK_TOPIC}: {len(chunks)} chunks, ms between: {between}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
