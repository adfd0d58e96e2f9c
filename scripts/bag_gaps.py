"""Gaps in what a bag's recorder received: per joint_states topic, the largest log-time gap,
where it fell, and how many exceeded 100 ms (habc_core.recording_gaps); and the ticks between
the policy's chunks.

    python scripts/bag_gaps.py <bag dir> [<bag dir> ...]

A recorder that misses an arm's state for more than the converter's staleness bound (0.25 s)
makes its episode unconvertible; this shows how close a graph run came.
"""

from __future__ import annotations

import sys
from pathlib import Path

from habc_core.bag_reader import open_bag
from habc_core.recording_gaps import joint_state_gaps


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for bag in map(Path, argv):
        for g in joint_state_gaps(bag):
            print(
                f"{bag.name} {g.topic}: {g.messages} messages, largest gap {g.largest_ms:.0f} ms "
                f"at {g.at_s:.2f} s, {g.over} over 100 ms"
            )
        with open_bag(bag) as contents:
            chunks = sorted(
                log_ns
                for topic, _type, log_ns, _msg in contents.messages()
                if topic == "/policy/action_chunk"
            )
        ticks = [
            round((b - a) / 1e6 * 30 / 1000) for a, b in zip(chunks, chunks[1:], strict=False)
        ]
        print(f"{bag.name} /policy/action_chunk: {len(chunks)} chunks, ticks between: {ticks}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
