"""The diagnostic (`habc-benchmark --diagnose`): controlled round-1 arms and what SFT makes of
round 1's data.

Every arm starts from the protocol seed's SFT checkpoint with round 1's budget and the methods'
training config, and is evaluated on the same held-out seeds:

| arm | trains on |
| --- | --- |
| control | the demos alone (= `sft_continued` round 1) |
| fresh_demos | the demos + as many fresh expert demos as round 1 has rollouts, as SFT |
| filtered_bc | the demos + round 1's rollouts credited with success, 50/50 (methods.py) |
| imit_dagger, habc | their own round-1 cells of the grid (not trained again) |

Round 1's rollouts are the same for every method (the SFT checkpoint on the same episode
seeds, seeds.py), so the diagnostic trains on habc's round-1 bags instead of collecting them
again: filtered BC then sees exactly the rollouts HABC learned from.

The analysis (`run_diagnose`, one JSON per seed) converts two small stores: the fresh demos
(held out from SFT: it never trained on them) and round 1 (demos + habc's round-1 rollouts).
On them it measures SFT's flow-matching loss per stream (habc_trainer.diagnostics), the
operator's recovery rate, and chunk jitter per source (habc_trainer.smoothness).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from habc_benchmark.stages import (
    DIAGNOSE_ROLLOUTS_OF,
    FILTERED_BC,
    FRESH_DEMOS,
    SFT,
    SFT_CONTINUED,
    SeedContext,
    _round_bag_dir,
    extract_config,
    use_one_thread,
    write_json,
)
from habc_benchmark.stats import two_proportion_z, wilson_interval
from habc_core.features import HUMAN
from habc_trainer.convert import convert
from habc_trainer.smoothness import store_jitter
from habc_trainer.store import EpisodeStore

# Deferred to run_diagnose: torch and the habc_trainer modules that import it.

# (arm, the grid cell that holds it at round 1), in table order
ARMS: tuple[tuple[str, str], ...] = (
    ("control", SFT_CONTINUED),
    ("fresh_demos", FRESH_DEMOS),
    ("filtered_bc", FILTERED_BC),
    ("imit_dagger", "imit_dagger"),
    ("habc", "habc"),
)
ARM_LABELS = {
    "control": "Control (demos only)",
    "fresh_demos": "+ fresh expert demos",
    "filtered_bc": "Filtered BC (own successes)",
    "imit_dagger": "Imit-DAgger",
    "habc": "HABC",
}
# Held-out demos first: SFT's loss on demos it never saw is the yardstick for the rest.
LOSS_ORDER: tuple[str, ...] = (
    "demo_heldout",
    "demo_train",
    "int_success",
    "int_failure",
    "auto_success",
    "auto_failure",
    "auto_unlabeled",
)
HELDOUT_STORE = "diagnose_heldout"
ROUND1_STORE = "diagnose_r001"
LOSS_SEED = 0  # the loss streams' draws: fixed, so two seeds' numbers differ by SFT only


def cells(ctx: SeedContext) -> list[str]:
    """The grid cells (round 1) the diagnostic reads, skipping a method the track lacks."""
    methods = set(ctx.track.methods)
    return [
        cell
        for _, cell in ARMS
        if cell in (SFT_CONTINUED, FRESH_DEMOS, FILTERED_BC) or cell in methods
    ]


def trains_itself(ctx: SeedContext, cell: str) -> bool:
    """Arms the diagnostic trains (the others are cells of the grid already)."""
    if cell == SFT_CONTINUED:
        return not ctx.track.sft_continued_control
    return cell == FRESH_DEMOS or (cell == FILTERED_BC and cell not in ctx.track.methods)


# --- analysis ---
@dataclass(frozen=True)
class Recovery:
    """The operator on one set of rollouts: who failed, who was taken over, who was saved."""

    rollouts: int
    autonomous_success: int
    autonomous_failure: int  # failed with no takeover
    taken_over: int
    taken_over_success: int

    @property
    def rate(self) -> float | None:
        return self.taken_over_success / self.taken_over if self.taken_over else None

    def to_dict(self) -> dict[str, Any]:
        lo, hi = wilson_interval(self.taken_over_success, self.taken_over)
        failing = self.taken_over + self.autonomous_failure
        return dict(self.__dict__) | {
            "rate": self.rate,
            "ci_low": lo,
            "ci_high": hi,
            # the operator only takes over a failing rollout (sim-rig.md): every takeover was
            # a failure in the making, so this is the share of failures it stepped into
            "takeover_share_of_failing": self.taken_over / failing if failing else None,
        }


def recovery(episodes: Iterable[tuple[bool, str]]) -> Recovery:
    """(intervened, outcome) per rollout episode -> Recovery counts."""
    n = auto_ok = auto_fail = taken = saved = 0
    for intervened, outcome in episodes:
        n += 1
        ok = outcome == "success"
        if intervened:
            taken += 1
            saved += ok
        else:
            auto_ok += ok
            auto_fail += not ok
    return Recovery(n, auto_ok, auto_fail, taken, saved)


def store_rollouts(store: Any) -> list[tuple[bool, str]]:
    """(intervened, outcome) of every rollout episode in an EpisodeStore."""
    return [
        (bool(store.array(HUMAN, i).any()), e["outcome"])
        for i, e in enumerate(store.episodes)
        if e["source"] == "rollout"
    ]


def run_diagnose(ctx: SeedContext) -> dict[str, Any]:
    """SFT's loss per stream, the operator's recovery and chunk jitter on round 1's data."""
    import torch  # deferred: torch, as the habc_trainer modules below

    from habc_trainer.checkpoint import load_checkpoint, load_policy
    from habc_trainer.diagnostics import split_anchors, stream_losses
    from habc_trainer.store_streams import stream_config_for
    from habc_trainer.streams import WindowStreams

    use_one_thread()
    sft_dir = ctx.ckpt(SFT, 0)
    cfg = load_checkpoint(sft_dir).train_config
    extract = extract_config(ctx, cfg)
    rollouts = _round_bag_dir(ctx.data_dir(DIAGNOSE_ROLLOUTS_OF), 1)
    convert([ctx.data_dir(FRESH_DEMOS)], ctx.store_dir(HELDOUT_STORE), extract)
    convert([ctx.demos_dir, *rollouts], ctx.store_dir(ROUND1_STORE), extract)
    # SFT's own window and credit settings: the windows the round-1 trainer draws
    scfg = stream_config_for(cfg, 1)
    held = WindowStreams(EpisodeStore(ctx.store_dir(HELDOUT_STORE)), scfg)
    r1_store = EpisodeStore(ctx.store_dir(ROUND1_STORE))
    r1 = WindowStreams(r1_store, scfg)
    split = split_anchors(r1)
    sources = {"demo_heldout": (held, held.anchors["sft"]), "demo_train": (r1, split["demo"])}
    sources |= {k: (r1, v) for k, v in split.items() if k != "demo"}
    policy = load_policy(sft_dir)
    with torch.no_grad():
        losses = stream_losses(
            policy, {k: sources[k] for k in LOSS_ORDER}, ctx.diagnose_windows, LOSS_SEED
        )
    rec = {
        "checkpoint": str(sft_dir),
        "rollouts_of": DIAGNOSE_ROLLOUTS_OF,
        "windows": ctx.diagnose_windows,
        "loss": [row.to_dict() for row in losses],
        "recovery": recovery(store_rollouts(r1_store)).to_dict(),
        "jitter": [row.to_dict() for row in store_jitter(r1_store)],
    }
    write_json(ctx.diagnose_json, rec)
    return {
        "loss": {r["stream"]: r["mean"] for r in rec["loss"]},
        "recovery": rec["recovery"]["rate"],
    }


# --- results ---
def pooled_arm(evals: Mapping[int, dict]) -> dict[str, Any] | None:
    """Success over every trial of the given seeds' evaluations, with its Wilson interval."""
    trials = [t for ev in evals.values() for t in ev["trials"]]
    if not trials:
        return None
    k, n = sum(bool(t["success"]) for t in trials), len(trials)
    lo, hi = wilson_interval(k, n)
    return {
        "successes": k,
        "n": n,
        "rate": k / n,
        "ci_low": lo,
        "ci_high": hi,
        "seeds": sorted(evals),
    }


def arm_table(evals: Mapping[str, Mapping[int, dict]]) -> dict[str, Any]:
    """evals: cell -> seed -> eval JSON (cells "sft/r000" and each arm's round-1 cell).

    Each arm is pooled over the seeds it finished and set against SFT on those same seeds.
    """
    out: dict[str, Any] = {}
    sft = evals.get(f"{SFT}/r000", {})
    out["sft"] = pooled_arm(sft)
    for arm, cell in ARMS:
        mine = evals.get(f"{cell}/r001", {})
        a = pooled_arm(mine)
        if a is not None:
            b = pooled_arm({s: sft[s] for s in mine if s in sft})
            a["z_vs_sft"] = (
                None
                if b is None
                else two_proportion_z(a["successes"], a["n"], b["successes"], b["n"])
            )
            a["sft_same_seeds"] = b
        out[arm] = a
    return out


def pooled_analysis(per_seed: Mapping[int, dict]) -> dict[str, Any] | None:
    """The seeds' analysis records pooled: loss and jitter means over seeds (each seed has its
    own SFT), recovery counts summed."""
    if not per_seed:
        return None
    recs = list(per_seed.values())
    loss: dict[str, Any] = {}
    for name in LOSS_ORDER:
        rows = [r for rec in recs for r in rec["loss"] if r["stream"] == name]
        means = [r["mean"] for r in rows if r["mean"] is not None]
        loss[name] = {
            "windows": sum(r["windows"] for r in rows),
            "seeds": len(means),
            "mean": sum(means) / len(means) if means else None,
            "min": min(means, default=None),
            "max": max(means, default=None),
        }
    keys = (
        "rollouts",
        "autonomous_success",
        "autonomous_failure",
        "taken_over",
        "taken_over_success",
    )
    rec_sum = Recovery(*(sum(int(r["recovery"][k]) for r in recs) for k in keys))
    jitter: dict[str, Any] = {}
    for rec in recs:
        for row in rec["jitter"]:
            j = jitter.setdefault(row["source"], {"samples": 0, "medians": []})
            j["samples"] += row["samples"]
            j["medians"].append(row["median_mm"])
    for j in jitter.values():
        j["median_mm_mean"] = sum(j["medians"]) / len(j["medians"])
    return {
        "seeds": sorted(per_seed),
        "loss": loss,
        "recovery": rec_sum.to_dict(),
        "jitter": jitter,
    }


def same_rollouts(records: Mapping[str, dict], methods: Iterable[str]) -> dict[str, Any] | None:
    """Whether the methods' round-1 rollout records agree episode for episode (outcome and
    length): the check that "one round of rollouts from the SFT checkpoint" is one."""
    runs = {m: records.get(f"rollouts_{m}_r001") for m in methods}
    runs = {m: r for m, r in runs.items() if r}
    if len(runs) < 2:
        return None
    ref = runs[DIAGNOSE_ROLLOUTS_OF] if DIAGNOSE_ROLLOUTS_OF in runs else next(iter(runs.values()))
    differ = sorted(
        m
        for m, r in runs.items()
        if (r.get("outcomes"), r.get("lengths")) != (ref.get("outcomes"), ref.get("lengths"))
    )
    return {"methods": sorted(runs), "differ": differ}
