"""Sampled-chunk jitter on held-out states: a checkpoint's chunks vs the demonstrations'.

For frames of held-out demonstration episodes (a store the checkpoint never trained on), sample
one chunk per frame and compare the median EE-position second difference of its executed rows
(the first `execute_steps`) with the demonstrator's own next `execute_steps` commands. Also the
mean of `--average` samples for the same observations, which separates per-sample noise from
what the model's mean does (docs/sim-rig.md, "Chunk smoothness").

    python scripts/measure_chunk_jitter.py CKPT HELD_OUT_STORE [--frames 200] [--average 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from habc_core import features as F
from habc_trainer.checkpoint import load_policy
from habc_trainer.smoothness import chunk_second_difference_mm
from habc_trainer.store import EpisodeStore


def held_out_frames(store: EpisodeStore, frames: int, execute: int, seed: int):
    """(episode, t) pairs whose next `execute` frames lie inside the episode."""
    rng = np.random.default_rng(seed)
    pool = [
        (i, t)
        for i, e in enumerate(store.episodes)
        if e["source"] == "demo"
        for t in range(0, e["length"] - execute)
    ]
    pick = rng.choice(len(pool), size=min(frames, len(pool)), replace=False)
    return [pool[k] for k in sorted(pick)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ckpt")
    p.add_argument("store")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--average", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    policy = load_policy(args.ckpt)
    cfg = policy.cfg
    store = EpisodeStore(args.store)
    n_arms = store.dim(F.HUMAN)
    pairs = held_out_frames(store, args.frames, cfg.execute_steps, args.seed)
    batch = {F.TASK: [store.episodes[i]["task"] for i, _ in pairs]}
    for key in (F.PROPRIO, F.ENV_STATE):
        if store.dim(key):
            batch[F.OBS_PREFIX + key] = torch.as_tensor(
                np.stack([store.array(key, i)[t] for i, t in pairs])
            )
    demo = np.stack([store.array(F.ACTION, i)[t : t + cfg.execute_steps] for i, t in pairs])
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    one = policy.infer_batch(batch, gen).numpy()[:, : cfg.execute_steps]
    per_call_ms = (time.perf_counter() - start) / len(pairs) * 1e3
    mean = np.mean(
        [
            policy.infer_batch(batch, gen).numpy()[:, : cfg.execute_steps]
            for _ in range(args.average)
        ],
        axis=0,
    )
    rows = {"demonstrator": demo, "one sample": one, f"mean of {args.average}": mean}
    print(
        f"{args.ckpt}: {len(pairs)} held-out frames, executed rows 0-{cfg.execute_steps - 1}, "
        f"noise_length_scale {getattr(cfg, 'noise_length_scale', 0.0)}"
    )
    print("| chunk | median mm | p90 mm |\n| --- | --- | --- |")
    for name, chunks in rows.items():
        d2 = chunk_second_difference_mm(chunks, n_arms)
        print(f"| {name} | {np.median(d2):.2f} | {np.percentile(d2, 90):.2f} |")
    err = np.abs(one - demo)[..., :3].mean() * 1e3
    print(
        f"mean |sample - demonstrator| over xyz of the executed rows: {err:.1f} mm; "
        f"batched inference {per_call_ms:.2f} ms per frame"
    )


if __name__ == "__main__":
    main()
