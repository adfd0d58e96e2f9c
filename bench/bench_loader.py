"""Benchmark (not a test): building a training batch from the episode store vs one training step.

    python bench/bench_loader.py                 # state and pixel stores, habc batch mix, 256
    python bench/bench_loader.py --episodes 40 --batches 20

A store is converted from synthetic bags (the rig's dims; pixels: three 96x96 cameras stored at
the sim preset's 64 px), then `draw_batch` over its window streams is timed (the trainer's data
path: vectorised gather from the memmaps, habc_trainer/window_batch.py) next to one HABC step
of the sim preset on the same batch. Bound: loader <= 10 % of a step (issue 17). Each mode runs
in its own process: peak RSS is that mode's alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import report_figure

BOUND = 0.10


def run_mode(mode: str, episodes: int, batches: int, batch: int) -> dict:
    import dataclasses

    import numpy as np
    import torch

    from habc_core.contract import episode_dir
    from habc_trainer.config import TrainConfig
    from habc_trainer.convert import convert
    from habc_trainer.episode import ExtractConfig
    from habc_trainer.store import EpisodeStore
    from habc_trainer.streams import WindowStreams, collate, stream_config_for
    from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode
    from habc_trainer.train_round import STREAMS, batch_counts, draw_batch
    from habc_trainer.update import StepContext, build_learner, update

    torch.set_num_threads(1)
    cams = ("top", "left_wrist", "right_wrist") if mode == "pixels" else ()
    overrides = {"cameras": cams} if cams else {}
    cfg = TrainConfig(method="habc", model_preset="sim", batch_size=batch, warmup_steps=0)
    cfg = dataclasses.replace(cfg, model_overrides=overrides)
    model = cfg.model_config()
    with tempfile.TemporaryDirectory(prefix="habc-bench-loader-") as tmp:
        root = Path(tmp)
        for i in range(episodes):
            kind = i % 4
            spec = SyntheticSpec(
                f"ep{i}",
                "P" * 150 if kind else "P" * 60 + "H" * 40 + "P" * 50,
                source="demo" if kind == 1 else "rollout",
                outcome="failure" if kind == 2 else "success",
                round=0 if kind == 1 else 1,
                cameras=cams,
                image_hw=(96, 96),
                with_env_state=not cams,
            )
            write_synthetic_episode(
                episode_dir(root / "bags", "t", spec.round, spec.episode_id), spec
            )
        extract = ExtractConfig(cameras=cams, image_size=model.image_size)
        convert([root / "bags"], root / "store", extract, progress=False)
        streams = WindowStreams(EpisodeStore(root / "store"), stream_config_for(cfg, 1))
        counts = batch_counts(
            cfg.method_config().batch_mix, [streams.size(s) for s in STREAMS], batch
        )
        rng = np.random.default_rng(0)
        draw_batch(streams, counts, rng)  # page the memmaps in once
        t0 = time.perf_counter()
        drawn = [draw_batch(streams, counts, rng) for _ in range(batches)]
        loader_ms = 1000 * (time.perf_counter() - t0) / batches
        # The peer: the same windows one by one (the loader before window_batch).
        t0 = time.perf_counter()
        for _ in range(batches):
            for stream, n in zip(STREAMS, counts, strict=True):
                if n:
                    anchors = streams.anchors[stream]
                    picks = anchors[rng.integers(0, len(anchors), size=n)]
                    collate([streams.window(int(g)) for g in picks])
        loop_ms = 1000 * (time.perf_counter() - t0) / batches
        dims = streams.dims()
        mc = model.with_dims(**dims, cameras=cams)
        learner = build_learner(cfg, mc, streams.norm_stats())
        gen = torch.Generator().manual_seed(0)
        for i in range(2):  # warm-up
            update(learner, drawn[i], cfg, StepContext(i, 1), gen)
        t0 = time.perf_counter()
        steps = min(batches, 5)
        for i in range(steps):
            update(learner, drawn[i], cfg, StepContext(i, 1), gen)
        step_ms = 1000 * (time.perf_counter() - t0) / steps
    return {
        "mode": mode,
        "frames": streams.num_frames,
        "loader_ms": loader_ms,
        "loop_ms": loop_ms,
        "step_ms": step_ms,
        "ratio": loader_ms / step_ms,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", nargs="+", default=["state", "pixels"])
    p.add_argument("--episodes", type=int, default=24)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_mode(args.one, args.episodes, args.batches, args.batch)))
        return 0
    print(f"batch {args.batch} (habc mix), sim preset, one torch thread; bound: loader <= 10 %")
    print(
        f"{'mode':<7} {'frames':>6} {'loader ms':>9} {'one-by-one ms':>13} {'step ms':>8} "
        f"{'loader/step':>11} {'peak MB':>8}"
    )
    for mode in args.modes:
        cmd = [sys.executable, __file__, "--one", mode, "--episodes", str(args.episodes)]
        cmd += ["--batches", str(args.batches), "--batch", str(args.batch)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        flag = "" if r["ratio"] <= BOUND else "  (over the bound)"
        print(
            f"{mode:<7} {r['frames']:6d} {r['loader_ms']:9.1f} {r['loop_ms']:13.1f} "
            f"{r['step_ms']:8.1f} {r['ratio']:11.1%} {r['peak_rss_mb']:8.0f}{flag}"
        )
        report_figure(
            f"loader / HABC step ({mode} store, batch {args.batch})",
            100.0 * r["ratio"],
            100.0 * BOUND,
            "%",
            peak_mb=r["peak_rss_mb"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
