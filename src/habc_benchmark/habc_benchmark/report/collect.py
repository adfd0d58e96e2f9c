"""results.json from the run directory: every finished cell's evaluation, the stage records,
the probes and the stage timings (nothing here is hand-written data)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from habc_benchmark.config import ExperimentConfig
from habc_benchmark.evaluation import load_sim
from habc_benchmark.plan import chains, seed_context
from habc_benchmark.report.labels import cell_key
from habc_benchmark.stages import SFT, read_json
from habc_benchmark.stats import aggregate


@dataclass(frozen=True)
class TrackData:
    """What one track's run directory holds, per protocol seed (filled by collect_track)."""

    name: str
    seeds: list[int]
    cells: list[tuple[str, int]]
    evals: dict[tuple[str, int], dict[int, dict]] = field(default_factory=dict)
    records: dict[int, dict[str, dict]] = field(default_factory=dict)
    probes: dict[int, dict] = field(default_factory=dict)
    # (method, round) -> seed -> the round checkpoint's critic_calibration (train_round)
    calibration: dict[tuple[str, int], dict[int, dict]] = field(default_factory=dict)


def collect_track(cfg: ExperimentConfig, track: str, out: Path, root: Path) -> TrackData:
    seeds = cfg.seeds_of(track)
    ctxs = {s: seed_context(cfg, track, s, out, root) for s in seeds}
    data = TrackData(track, list(seeds), chains(ctxs[seeds[0]]))
    for s, ctx in ctxs.items():
        for cell in data.cells:
            ev = read_json(ctx.eval_json(*cell))
            if ev is not None:
                data.evals.setdefault(cell, {})[s] = ev
            manifest = read_json(ctx.ckpt(*cell) / "manifest.json")
            if manifest and manifest.get("critic_calibration"):
                data.calibration.setdefault(cell, {})[s] = manifest["critic_calibration"]
        recs = {}
        rec_dir = ctx.root / "records"
        if rec_dir.is_dir():
            for p in sorted(rec_dir.glob("*.json")):
                recs[p.stem] = json.loads(p.read_text("utf-8"))
        data.records[s] = recs
        pr = read_json(ctx.probes_json)
        if pr is not None:
            data.probes[s] = pr
    return data


def cell_aggregate(data: TrackData, cell: tuple[str, int]) -> dict[str, Any] | None:
    per = data.evals.get(cell, {})
    if not per:
        return None
    seeds = sorted(per)
    agg = aggregate(
        [
            ([t["success"] for t in per[s]["trials"]], [t["length"] for t in per[s]["trials"]])
            for s in seeds
        ]
    )
    d = agg.to_dict()
    d["per_seed"] = {str(s): per[s]["summary"] for s in seeds}
    d["seed_list"] = seeds
    return d


def results_dict(
    cfg: ExperimentConfig, data: dict[str, TrackData], progress: dict[str, Any] | None, root: Path
) -> dict[str, Any]:
    tracks = {}
    for name, td in data.items():
        cells, trials = {}, {}
        for method, r in td.cells:
            agg = cell_aggregate(td, (method, r))
            cells[cell_key(method, r)] = agg
            trials[cell_key(method, r)] = [
                t | {"protocol_seed": s}
                for s, ev in sorted(td.evals.get((method, r), {}).items())
                for t in ev["trials"]
            ]
        tracks[name] = {
            "cells": cells,
            "trials": trials,
            "records": {str(s): v for s, v in td.records.items()},
            "probes": {str(s): v for s, v in td.probes.items()},
            "critic_calibration": {
                cell_key(m, r): {str(s): c for s, c in per.items()}
                for (m, r), per in sorted(td.calibration.items())
            },
        }
    t_max = int(load_sim(str(root / cfg.sim_config)).task.t_max)
    return {
        "config": cfg.to_dict(),
        "tracks": tracks,
        "timing": timing(progress),
        "t_max": t_max,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(root),
    }


def _git_commit(root: Path) -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def timing(progress: dict[str, Any] | None) -> dict[str, Any]:
    """Stage wall times (worker seconds) and elapsed time per (track, seed)."""
    if not progress:
        return {}
    stages: dict[str, list[float]] = {}
    task_s: dict[str, float] = {}
    intervals: list[tuple[str, float, float]] = []
    for key, st in progress.get("tasks", {}).items():
        if st.get("state") != "done" or "wall_s" not in st:
            continue
        track, seed, kind, method, _ = key.split("/")
        name = "train (SFT)" if kind == "train" and method == SFT else kind
        stages.setdefault(name, []).append(float(st["wall_s"]))
        task_s[f"{track}/{seed}"] = task_s.get(f"{track}/{seed}", 0.0) + float(st["wall_s"])
        if st.get("started") is not None and st.get("ended") is not None:
            intervals.append((f"{track}/{seed}", float(st["started"]), float(st["ended"])))
    return {
        "stages": {
            k: {"n": len(v), "mean_s": sum(v) / len(v), "total_s": sum(v)}
            for k, v in sorted(stages.items())
        },
        "elapsed_s": {
            k: max(b for s, _, b in intervals if s == k)
            - min(a for s, a, _ in intervals if s == k)
            for k in sorted({s for s, _, _ in intervals})
        },
        "task_s": dict(sorted(task_s.items())),
        "concurrency": _concurrency(intervals),
    }


def _concurrency(intervals: list[tuple[str, float, float]]) -> dict[str, float]:
    """Per seed, how many tasks (its own included) ran at once on average over its tasks' time:
    the context its timings were measured in (2 on 2 cores is full use, 3 is oversubscribed)."""
    busy: dict[str, float] = {}
    overlap: dict[str, float] = {}
    for seed, a0, a1 in intervals:
        busy[seed] = busy.get(seed, 0.0) + (a1 - a0)
        overlap[seed] = overlap.get(seed, 0.0) + sum(
            max(0.0, min(a1, b1) - max(a0, b0)) for _, b0, b1 in intervals
        )
    return {k: overlap[k] / busy[k] for k in sorted(busy) if busy[k] > 0}
