"""Untouched-marker drift over many layouts (docs/sim-rig.md, "Physics checks").

python scripts/measure_object_drift.py --layouts 30 --seconds 2
"""

from __future__ import annotations

import argparse

import numpy as np

from habc_sim.config import load_sim_config
from habc_sim.drift import untouched_marker_drift
from habc_sim.env import PouchEnv


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layouts", type=int, default=30)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--sim-config", default="config/sim.yaml")
    args = p.parse_args()
    env = PouchEnv(load_sim_config(args.sim_config), obs_mode="state")
    ticks = int(round(args.seconds * env.control_hz))
    drifts = [
        untouched_marker_drift(env, s, ticks)
        for s in range(args.first_seed, args.first_seed + args.layouts)
    ]
    mm = np.array([d.distance_m for d in drifts]) * 1e3
    moving = sum(d.still_moving for d in drifts)
    print(
        f"untouched marker over {args.seconds:g} s on {len(drifts)} layouts: median "
        f"{np.median(mm):.2f} mm, p90 {np.percentile(mm, 90):.2f} mm, max {mm.max():.2f} mm; "
        f"{moving} still moving (> 1 mm/s) at the end"
    )


if __name__ == "__main__":
    main()
