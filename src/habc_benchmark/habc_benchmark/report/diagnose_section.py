"""The diagnostic's part of results.json and its section of docs/results.md (diagnose.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from habc_benchmark import diagnose as D
from habc_benchmark.config import ExperimentConfig
from habc_benchmark.plan import seed_context
from habc_benchmark.report.diagnose_model import Analysis, ArmResult, DiagnoseResults
from habc_benchmark.report.labels import pct
from habc_benchmark.stages import SFT, read_json

TITLE = "## Diagnostic: controlled round-1 arms"
TRAINS_ON = {
    "control": "demos",
    "fresh_demos": "demos + fresh expert demos",
    "filtered_bc": "demos + policy frames of successful rollouts (50/50)",
    "imit_dagger": "demos + intervention windows (50/50)",
    "habc": "demos + interventions + gated rollouts (25/25/50)",
}
STREAM_TEXT = {
    "demo_heldout": "held-out demos (the fresh demos: SFT never trained on them)",
    "demo_train": "demos SFT trained on",
    "int_success": "intervention windows, rollout recovered",
    "int_failure": "intervention windows, rollout failed anyway",
    "auto_success": "policy windows credited with success",
    "auto_failure": "policy windows credited with failure",
    "auto_unlabeled": "policy windows before a takeover (unlabeled)",
}


def collect(
    cfg: ExperimentConfig, out: Path, root: Path, records: dict[int, dict[str, dict]]
) -> dict[str, Any]:
    """results.json's "diagnose": arms pooled over the diagnosed seeds, the analysis pooled and
    per seed. records: the state track's stage records per seed (collect.TrackData.records)."""
    seeds = [s for s in cfg.seeds_of("state") if cfg.diagnosed("state", s)]
    if not seeds:
        return {"enabled": False, "seeds": []}
    evals: dict[str, dict[int, dict]] = {}
    per_seed: dict[int, dict] = {}
    same: dict[str, Any] = {}
    kept: dict[str, int] = {}
    for s in seeds:
        ctx = seed_context(cfg, "state", s, out, root)
        for cell, r in [(SFT, 0), *((c, 1) for c in D.cells(ctx))]:
            ev = read_json(ctx.eval_json(cell, r))
            if ev is not None:
                evals.setdefault(f"{cell}/r{r:03d}", {})[s] = ev
        rec = read_json(ctx.diagnose_json)
        if rec is not None:
            per_seed[s] = rec
        train = records.get(s, {}).get(f"train_{D.FILTERED_BC}_r001")
        if train is not None:
            kept[str(s)] = int(train["stream_sizes"]["auto"])
        check = D.same_rollouts(records.get(s, {}), ctx.track.methods)
        if check is not None:
            same[str(s)] = check
    return {
        "enabled": True,
        "seeds": seeds,
        "arms": D.arm_table(evals),
        "analysis": D.pooled_analysis(per_seed),
        "per_seed": {str(s): v for s, v in per_seed.items()},
        "same_rollouts": same,
        "filtered_bc_windows": kept,
    }


def _arm_row(name: str, trains_on: str, a: ArmResult | None) -> str:
    if a is None:
        return f"| {name} | {trains_on} | pending | | |"
    z = a.z_vs_sft
    return (
        f"| {name} | {trains_on} | {pct(a.rate)} [{pct(a.ci_low)}, "
        f"{pct(a.ci_high)}] | {a.successes}/{a.n} | "
        f"{'' if z is None else f'{z:+.2f}'} |"
    )


def _analysis_lines(an: Analysis) -> list[str]:
    L = [
        f"SFT's flow-matching loss per stream (the actor's own per-sample loss with its "
        f"masks; {an.windows} windows drawn per stream and "
        "seed; mean over seeds, min–max over seeds):",
        "",
        "| stream | windows | SFT loss | min–max |",
        "| --- | --- | --- | --- |",
    ]
    for name in D.LOSS_ORDER:
        row = an.loss[name]
        if row.mean is None:
            L.append(f"| {STREAM_TEXT[name]} | 0 | – | |")
            continue
        L.append(
            f"| {STREAM_TEXT[name]} | {row.windows} | {row.mean:.3f} | "
            f"{row.min:.3f}–{row.max:.3f} |"
        )
    rc = an.recovery
    failing = rc.taken_over + rc.autonomous_failure
    L += [
        "",
        f"Operator on round 1's {rc.rollouts} rollouts: {rc.autonomous_success} "
        f"autonomous successes; it took over {rc.taken_over} of {failing} failing rollouts "
        f"and recovered {rc.taken_over_success} of {rc.taken_over} = "
        f"{pct(rc.rate)} % [{pct(rc.ci_low)}, {pct(rc.ci_high)}].",
        "",
    ]
    L += [
        "Chunk jitter per source on round 1's store (executed EE second difference, "
        "`habc_trainer.smoothness`; median per seed, mean over seeds):",
        "",
        "| source | arm-ticks | median mm |",
        "| --- | --- | --- |",
    ]
    for source, j in an.jitter.items():
        L.append(f"| {source} | {j.samples} | {j.median_mm_mean:.2f} |")
    return L


def section(d: DiagnoseResults, cfg: ExperimentConfig) -> list[str]:
    """The markdown lines of the diagnostic's section."""
    L = [TITLE, ""]
    if not d.enabled:
        return L + [
            "Not run by this preset (`diagnose: true` in its YAML turns it on; "
            "`habc-benchmark --diagnose` runs only the diagnostic and what it needs).",
            "",
        ]
    seeds = ", ".join(map(str, d.seeds))
    t = cfg.state
    L += [
        f"Protocol seeds {seeds}. Every arm starts from the seed's SFT checkpoint and gets "
        f"round 1's budget ({t.steps_per_round} steps, the methods' training config); the "
        f"rollouts are round 1's {t.rollouts_per_round} per seed (the SFT checkpoint on the "
        "same episode seeds for every method; the diagnostic reuses HABC's), the fresh "
        f"demos {t.rollouts_per_round} per seed from unused demo seeds. Success after "
        f"round 1 in % over {t.eval_trials} held-out trials per seed, pooled over seeds "
        "[Wilson 95 %]; z against SFT on the same seeds (two-proportion).",
        "",
    ]
    L += [
        "| arm | trains on | success r1 % [95 %] | successes | z vs SFT |",
        "| --- | --- | --- | --- | --- |",
    ]
    L.append(_arm_row("SFT (r0)", "demos (the starting point)", d.arms.get("sft")))
    for arm, _ in D.ARMS:
        if arm in d.arms:
            L.append(_arm_row(D.ARM_LABELS[arm], TRAINS_ON[arm], d.arms[arm]))
    L.append("")
    if d.filtered_bc_windows:
        # an empty stream gives its batch share away (train_round.batch_counts): with no
        # autonomous success to imitate, filtered BC is the control again
        L += [
            "Filtered BC's rollout windows (successful policy frames) per seed: "
            + ", ".join(f"seed {s}: {n}" for s, n in d.filtered_bc_windows.items())
            + " (0: nothing to imitate, its batch was all demos).",
            "",
        ]
    if d.analysis is None:
        return L + ["Analysis of SFT on round 1's data: pending.", ""]
    L += _analysis_lines(d.analysis)
    if d.same_rollouts_checked:
        L += [
            "",
            "Round-1 rollouts identical across methods (outcome and length per episode): "
            + (
                "yes"
                if not d.differ
                else "no: "
                + "; ".join(
                    f"seed {s}: {', '.join(m)} differ from HABC's" for s, m in d.differ.items()
                )
            )
            + ".",
        ]
    return L + [""]
