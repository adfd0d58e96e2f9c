"""Benchmark of the simulated rig: control ticks per second with and without rendering.

    python bench/bench_sim.py                 # default config, 3 episodes per setting
    python bench/bench_sim.py --episodes 5 --image-size 128 --core 0

Each setting replays recorded expert actions through `PouchEnv.step` (physics substeps, IK for
both arms, task checks, observation, and in pixel mode three rendered cameras), so the numbers
are the env's own cost, not the expert's. Also timed: the full scripted-demo loop and the
collector writing bags. The env.step settings are replayed `--repeats` times and the best run
is shown (as timeit does: the run least disturbed by other processes). Printed per setting:
ticks/s on the wall clock and per CPU second of this process (the honest single-core figure on
a shared machine), the ratio to real time at the control rate, and the process's peak RSS at
the end. Pins itself to one core (`--core`).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _record(env, seed: int) -> np.ndarray:
    from habc_control.collect import expert_actions
    from habc_sim.config import ExpertConfig
    from habc_sim.expert import ScriptedExpert

    env.reset(seed)
    expert = ScriptedExpert(env, ExpertConfig(), np.random.default_rng(seed))
    return np.asarray(expert_actions(env, expert))


def _time_replay(env, demos: list[tuple[int, np.ndarray]]) -> tuple[int, float, float]:
    ticks = 0
    w0, c0 = time.perf_counter(), time.process_time()
    for seed, actions in demos:
        env.reset(seed)
        for a in actions:
            env.step(a)
        ticks += len(actions)
    return ticks, time.perf_counter() - w0, time.process_time() - c0


def _line(name: str, ticks: int, wall: float, cpu: float, hz: float) -> str:
    w, c = ticks / wall, ticks / cpu
    return (
        f"{name:<34} {ticks:>6} ticks  {w:>7.0f} ticks/s wall ({w / hz:>5.1f}x real time)  "
        f"{c:>7.0f} ticks/s per CPU s ({c / hz:>5.1f}x)  peak RSS {_peak_rss_mb():.0f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="timed replays; the best is shown")
    p.add_argument("--image-size", type=int, default=None, help="default: config scene.image_size")
    p.add_argument("--config", default=None, help="sim YAML (default: built-in defaults)")
    p.add_argument("--core", type=int, default=0, help="CPU to pin to (-1: no pinning)")
    args = p.parse_args(argv)
    if args.core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    os.environ.setdefault("MUJOCO_GL", "egl")

    import dataclasses

    from habc_control.collect import BagSink, CollectConfig, Collector
    from habc_sim.config import load_sim_config
    from habc_sim.env import PouchEnv

    cfg = load_sim_config(args.config)
    if args.image_size is not None:
        cfg = dataclasses.replace(
            cfg, scene=dataclasses.replace(cfg.scene, image_size=args.image_size)
        )
    hz = cfg.scene.control_hz
    print(
        f"control {hz:.0f} Hz, {cfg.scene.substeps} substeps of "
        f"{cfg.scene.timestep * 1e3:.2f} ms, image {cfg.scene.image_size}px, "
        f"{args.episodes} episodes per setting, pinned to core {args.core}"
    )

    state_env = PouchEnv(cfg, obs_mode="state")
    w0, c0 = time.perf_counter(), time.process_time()
    demos = [(s, _record(state_env, s)) for s in range(args.episodes)]
    n = sum(len(a) for _, a in demos)
    print(
        _line(
            "state: scripted expert loop",
            n,
            time.perf_counter() - w0,
            time.process_time() - c0,
            hz,
        )
    )
    # Best of `repeats` (the run least disturbed by other processes), as timeit reports.
    runs = [_time_replay(state_env, demos) for _ in range(args.repeats)]
    print(_line("state: env.step only", *min(runs, key=lambda r: r[2]), hz))
    pixel_env = PouchEnv(cfg, obs_mode="pixels")
    runs = [_time_replay(pixel_env, demos) for _ in range(args.repeats)]
    print(_line("pixels: env.step + 3 cameras", *min(runs, key=lambda r: r[2]), hz))
    pixel_env.close()
    with tempfile.TemporaryDirectory() as tmp:
        for name, env, images in (("state", state_env, False),):
            col = Collector(env, CollectConfig(mode="demo"), BagSink(tmp, write_images=images))
            w0, c0 = time.perf_counter(), time.process_time()
            ticks = sum(col.run_episode(s).ticks for s in range(args.episodes))
            print(
                _line(
                    f"{name}: collect demos -> MCAP bags",
                    ticks,
                    time.perf_counter() - w0,
                    time.process_time() - c0,
                    hz,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
