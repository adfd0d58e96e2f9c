"""Gaps in what a bag's recorder received: per joint_states topic, the largest log-time gap,
where it fell, and how many exceeded 100 ms; and the ticks between the policy's chunks.

    python scripts/bag_gaps.py <bag dir> [<bag dir> ...]

A recorder that misses an arm's state for more than the converter's staleness bound (0.25 s)
makes its episode unconvertible; this shows how close a graph run came.
"""

from __future__ import annotations

import sys
from pathlib import Path

from habc_core.bag_reader import open_bag


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for bag in map(Path, argv):
        series: dict[str, list[int]] = {}
        with open_bag(bag) as contents:
            for topic, _type, log_ns, _msg in contents.messages():
                if topic.endswith("joint_states") or topic == "/policy/action_chunk":
                    series.setdefault(topic, []).append(log_ns)
        start = min(min(t) for t in series.values())
        for topic, times in sorted(series.items()):
            times.sort()
            gaps = [(b - a) / 1e6 for a, b in zip(times, times[1:], strict=False)]
            if topic == "/policy/action_chunk":
                ticks = [round(g * 30 / 1000) for g in gaps]
                print(f"{bag.name} {topic}: {len(times)} chunks, ticks between: {ticks}")
                continue
            worst = max(range(len(gaps)), key=gaps.__getitem__)
            at = (times[worst] - start) / 1e9
            over = sum(g > 100 for g in gaps)
            print(
                f"{bag.name} {topic}: {len(times)} messages, largest gap {gaps[worst]:.0f} ms "
                f"at {at:.2f} s, {over} over 100 ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
