"""The "Diagnostics" tables: partial progress, what the rollouts held, how batches reuse each
stream, critic calibration, training-time statistics and the critic probes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from habc_benchmark.report.labels import label, pct
from habc_benchmark.report.model import CriticCalibration, TrackResults
from habc_benchmark.report.reading import PAPER_G_SUCC, PAPER_RECAP_PASS, metric_values
from habc_trainer.methods import METHODS

MILESTONES = (
    "lid_opened",
    "marker_grasped",
    "marker_lifted",
    "marker_in_pouch",
    "lid_closed_on_marker",
)
TRAINING_METHODS = ("habc", "habc_v", "habc_naive", "habc_ir", "imit_recap")
TRAINING_METRICS = (
    "gate/g_mean_rollout_succ",
    "gate/g_mean_intervention",
    "weights/mean_rollout_succ",
    "critic/p_v_mean",
    "recap/pass_rate",
)


def _mean_text(v: list[float]) -> str:
    return "–" if not v else f"{sum(v) / len(v):.2f}"


def milestone_table(td: TrackResults, data_cells: list[tuple[str, int]]) -> list[str]:
    """Partial progress in the evaluation trials: share of trials that reached each task
    milestone (sim-rig.md), pooled over seeds, and the median length of failed trials (a
    short failure means the marker was lost early: knocked off the table)."""
    rows = []
    for method, r in data_cells:
        trials = td.trials.get((method, r), ())
        if td.cell(method, r) is None or not trials:
            continue
        n = len(trials)
        shares = [sum(m in t.milestones for t in trials) / n for m in MILESTONES]
        fails = sorted(t.length for t in trials if not t.success)
        med = "–" if not fails else f"{fails[len(fails) // 2]}"
        rows.append(
            f"| {label(method)} | {r} | {n} | "
            + " | ".join(pct(x) for x in shares)
            + f" | {med} |"
        )
    if not rows:
        return []
    return [
        "Partial progress in the evaluation trials (% of trials reaching each milestone, "
        "pooled over seeds) and the median length of failed trials in frames:",
        "",
        "| method | round | trials | " + " | ".join(MILESTONES) + " | median failure length |",
        "|" + " --- |" * (len(MILESTONES) + 4),
        *rows,
        "",
    ]


def rollout_table(td: TrackResults, methods: list[str], last: int) -> list[str]:
    """What each round's rollouts contained (summed over seeds): the data HABC learns from."""
    rows = []
    for method in methods:
        for r in range(1, last + 1):
            recs = td.rollout_records(method, r)
            if not recs:
                continue
            n = sum(x.episodes for x in recs)
            kinds: dict[str, int] = {}
            for x in recs:
                for k, v in x.kinds.items():
                    kinds[k] = kinds.get(k, 0) + v
            rows.append(
                f"| {label(method)} | {r} | {n} | {kinds.get('autonomous_success', 0)} | "
                f"{kinds.get('intervened_success', 0)} | "
                f"{kinds.get('intervened_failure', 0)} | "
                f"{kinds.get('autonomous_failure', 0)} |"
            )
    if not rows:
        return []
    return [
        "Rollouts per round (summed over seeds): who succeeded, and how often the simulated "
        "operator stepped in.",
        "",
        "| method | round | rollouts | autonomous success | intervened, success | "
        "intervened, failure | autonomous failure |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


def data_reuse_table(td: TrackResults, methods: list[str], round_index: int = 1) -> list[str]:
    """How a round's batches use each stream: the share of demonstrations in a batch and how
    many passes the round's steps make over each stream (summed over seeds), next to success."""
    # deferred: train_round imports torch, which the rest of the report does without
    from habc_trainer.train_round import batch_counts

    rows = []
    for method in methods:
        share, passes = None, [0.0, 0.0, 0.0]
        seen = 0
        for rec in td.train_records(method, round_index):
            cfg_path = Path(rec.checkpoint) / "config.yaml" if rec.checkpoint else None
            if cfg_path is None or not cfg_path.is_file():
                continue
            train = yaml.safe_load(cfg_path.read_text("utf-8"))["train"]
            mix = train.get("batch_mix") or METHODS[train["method"]].batch_mix
            sizes = [rec.stream_sizes[k] for k in ("sft", "int", "auto")]
            counts = batch_counts(mix, sizes, int(train["batch_size"]))
            share = counts[0] / sum(counts)
            for i, (n, size) in enumerate(zip(counts, sizes, strict=True)):
                passes[i] += rec.steps * n / size if size else 0.0
            seen += 1
        c = td.cell(method, round_index)
        if not seen or c is None or share is None:
            continue
        rows.append(
            f"| {label(method)} | {100 * share:.0f} % | "
            + " | ".join(f"{v / seen:.1f}" for v in passes)
            + f" | {pct(c.pooled.rate)} |"
        )
    if not rows:
        return []
    return [
        f"Round {round_index}'s batches (mean over seeds): the demonstrations' share of a "
        "batch, and how many times the round's gradient steps pass over each stream "
        "(D_SFT, D_int, D_auto). A stream of a few hundred frames passed over dozens of "
        "times in one round is fitted closely.",
        "",
        "| method | demos in batch | passes D_SFT | passes D_int | passes D_auto | "
        f"success r{round_index} % |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


def critic_calibration_table(td: TrackResults) -> list[str]:
    """Held-out BCE / ECE of each round's critic, at the round's start, after its critic-only
    pre-training and at its end (train_round's `critic_calibration`), averaged over seeds."""
    rows = []
    for (method, r), per_seed in td.critic_calibration.items():

        def avg(phase: str, key: str, per_seed: Mapping[int, CriticCalibration] = per_seed) -> str:
            return _mean_text(
                [
                    getattr(c[phase], key)
                    for c in per_seed.values()
                    if phase in c and c[phase].samples > 0
                ]
            )

        n = [c["start"].samples for c in per_seed.values() if "start" in c]
        rows.append(
            f"| {label(method)} | {r} | {len(per_seed)} | "
            f"{sum(n) // max(len(n), 1)} | {avg('start', 'success_rate')} | "
            + " | ".join(
                f"{avg(ph, 'bce')} / {avg(ph, 'ece')}" for ph in ("start", "after_pretrain", "end")
            )
            + " |"
        )
    if not rows:
        return []
    return [
        "Critic calibration per round on the round's held-out rollout episodes (10 % of "
        "the labeled ones, never trained on): BCE / expected calibration error of p_v, "
        "mean over seeds. A constant predictor at the success rate p scores "
        "BCE = -p ln p - (1-p) ln(1-p) (0.56 at p = 0.25).",
        "",
        "| method | round | seeds | held-out windows per seed | success rate | start | "
        "after critic pre-training | end of round |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


def training_table(td: TrackResults, R: int) -> list[str]:
    """TensorBoard scalars of each training round against the paper's App. G figures."""
    rows = []
    for method in TRAINING_METHODS:
        for r in range(1, R + 3):
            vals = {k: v for k in TRAINING_METRICS if (v := metric_values(td, method, r, k))}
            if vals:
                rows.append(
                    f"| {label(method)} | {r} | "
                    + " | ".join(_mean_text(vals.get(k, [])) for k in TRAINING_METRICS)
                    + " |"
                )
    if not rows:
        return []
    return [
        "Training-time statistics (TensorBoard scalars averaged over each round after the "
        "gate warm-up, then over seeds). Paper App. G: mean g_t on successful rollout "
        f"samples {PAPER_G_SUCC[0]}-{PAPER_G_SUCC[1]}; with IR, ≈ 1.0 on intervention "
        f"windows; Recap pass rate {int(PAPER_RECAP_PASS[0] * 100)}-"
        f"{int(PAPER_RECAP_PASS[1] * 100)} %.",
        "",
        "| method | round | mean g_t, successful rollouts | mean g_t, interventions | "
        "mean actor weight, successful rollouts | mean p_v (labeled) | Recap pass rate |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


def probe_tables(td: TrackResults) -> list[str]:
    """g_t per source and p_v calibration of each seed's probed critics (probes.py)."""
    probe_rows, cal_rows = [], []
    for s, pr in sorted(td.probes.items()):
        for name, g in pr.gate.items():
            parts = [f"{src} {v.mean:.2f} ± {v.std:.2f} (n={v.n})" for src, v in g.sources.items()]
            probe_rows.append(f"| {s} | {name} | " + "; ".join(parts) + " |")
        for name, c in pr.calibration.items():
            auc_s = "–" if c.auc is None else f"{c.auc:.2f}"
            cal_rows.append(
                f"| {s} | {name} | {c.p_v_s0_mean:.2f} ± {c.p_v_s0_std:.2f} | "
                f"{pct(c.policy_success)} % | {auc_s} | {c.brier:.3f} |"
            )
    lines = []
    if probe_rows:
        lines += [
            "g_t of each final checkpoint's critic on its own replay buffer (2048 "
            "windows per stream):",
            "",
            "| seed | checkpoint | mean ± std g_t by source |",
            "| --- | --- | --- |",
            *probe_rows,
            "",
        ]
    if cal_rows:
        lines += [
            "Critic calibration: p_v at the initial state of the held-out evaluation "
            "layouts, against the evaluation outcomes of the policy whose rollouts "
            "trained that critic (round r's critic learns from round r−1's policy):",
            "",
            "| seed | critic | mean p_v(s_0) | that policy's success | AUC | Brier |",
            "| --- | --- | --- | --- | --- | --- |",
            *cal_rows,
            "",
        ]
    return lines


def diagnostics(td: TrackResults, R: int) -> list[str]:
    return training_table(td, R) + critic_calibration_table(td) + probe_tables(td)
