"""Benchmark (not a test): trainer gradient steps/s and peak memory on CPU.

    python bench/bench_train.py                       # tiny + sim presets, habc + sft, batch 256
    python bench/bench_train.py --presets sim --methods habc imit_recap --steps 30 --threads 2

Each (preset, method) runs in its own process so peak RSS is that configuration's alone. State
mode (proprio + env_state, no cameras), the dims of the bimanual ARX X5 rig in EE mode.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PROPRIO_DIM, ACTION_DIM, ENV_STATE_DIM = 20, 20, 16


def run_one(preset: str, method: str, steps: int, batch: int, threads: int) -> dict:
    import numpy as np
    import torch

    from habc_trainer.config import TrainConfig
    from habc_trainer.models.example import SyntheticStreams
    from habc_trainer.train_round import batch_counts, draw_batch
    from habc_trainer.update import StepContext, build_learner, update

    torch.set_num_threads(threads)
    cfg = TrainConfig(method=method, model_preset=preset, batch_size=batch, warmup_steps=0)
    mc = cfg.model_config().with_dims(
        proprio_dim=PROPRIO_DIM, action_dim=ACTION_DIM, env_state_dim=ENV_STATE_DIM
    )
    streams = SyntheticStreams(mc, per_stream=512)
    learner = build_learner(cfg, mc, streams.norm_stats())
    rng = np.random.default_rng(0)
    counts = batch_counts(
        cfg.method_config().batch_mix, [streams.size(s) for s in ("sft", "int", "auto")], batch
    )
    batches = [draw_batch(streams, counts, rng) for _ in range(4)]  # data cost excluded
    gen = torch.Generator().manual_seed(0)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(3):  # warm-up
        update(learner, batches[i % 4], cfg, StepContext(i, 1), gen)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        update(learner, batches[i % 4], cfg, StepContext(i, 1), gen)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in learner.modules().items()}
    return {
        "preset": preset,
        "method": method,
        "batch": batch,
        "threads": threads,
        "steps_per_s": steps / dt,
        "ms_per_step": 1000 * dt / steps,
        # CPU time per step: what the step costs when the (shared) cores are not contended.
        "cpu_ms_per_step": 1000 * cpu / steps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_steps_mb": rss0 / 1024,
        "params": params,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "sim"])
    p.add_argument("--methods", nargs="+", default=["habc", "sft"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--one", nargs=2, metavar=("PRESET", "METHOD"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.steps, args.batch, args.threads)))
        return 0
    print(
        f"{'preset':<6} {'method':<11} {'steps/s':>8} {'ms/step':>8} {'cpu ms':>7} "
        f"{'peak MB':>8}  params"
    )
    for preset in args.presets:
        for method in args.methods:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    preset,
                    method,
                    "--steps",
                    str(args.steps),
                    "--batch",
                    str(args.batch),
                    "--threads",
                    str(args.threads),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{preset:<6} {method:<11} {r['steps_per_s']:8.1f} {r['ms_per_step']:8.1f} "
                f"{r['cpu_ms_per_step']:7.1f} {r['peak_rss_mb']:8.0f}  {r['params']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
