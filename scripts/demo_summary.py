"""The closing summary of `make demo`: what went into the HABC round and what came out.

    python scripts/demo_summary.py OUT_DIR

Reads the episode store the HABC round trained on (OUT/data/store/store.json), the ROS graph's
bags and the evaluation sidecars. An episode is from the ROS graph when its bag directory has no
`sim_log.yaml` (the DDS-free collector writes one beside every sidecar; the recorder node never).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from habc_core.contract import find_episode_dirs, read_sidecar

SIM_LOG = "sim_log.yaml"


def _kind(ep: dict) -> str:
    runtime = "collect" if (Path(ep["bag_dir"]) / SIM_LOG).is_file() else "ROS graph"
    took = "intervened" if ep["intervened"] and ep["source"] != "demo" else ""
    return f"{runtime:<9} {ep['source']:<7} {ep['outcome']:<8} {took}".rstrip()


def main(out: Path) -> int:
    manifest = out / "data" / "store" / "store.json"
    if not manifest.is_file():
        print(f"demo summary: {manifest} not found (did the HABC round run?)", file=sys.stderr)
        return 1
    store = json.loads(manifest.read_text(encoding="utf-8"))
    episodes = store["episodes"]
    print(
        f"HABC round 1 trained on {len(episodes)} episodes, "
        f"{sum(e['length'] for e in episodes)} frames:"
    )
    for kind, n in sorted(Counter(_kind(e) for e in episodes).items()):
        print(f"  {n:3d}  {kind}")
    graph = [e for e in episodes if not (Path(e["bag_dir"]) / SIM_LOG).is_file()]
    for e in graph:
        print(
            f"  ROS graph episode {e['episode_id']}: {e['length']} frames, {e['outcome']}, "
            f"arm commands paired by {e.get('command_pairing', '?')}, skew max "
            f"{e.get('command_skew_max_ms', float('nan')):.1f} ms"
        )
    skipped = store.get("skipped") or {}
    print(f"  bags skipped by convert: {len(skipped)}")
    for bag, reason in sorted(skipped.items()):
        print(f"    {bag}: {reason}")
    evals = [read_sidecar(d) for d in find_episode_dirs(out / "eval")]
    ok = sum(m is not None and m.outcome == "success" for m in evals)
    print(
        f"evaluation of the HABC checkpoint: {ok}/{len(evals)} successes on held-out seeds "
        "(a smoke run: 12 demos and 300 steps do not make a working policy)"
    )
    return 0 if graph and not skipped else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/demo")))
