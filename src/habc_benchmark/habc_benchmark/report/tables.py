"""The report's main tables: the protocol against the paper's, the success / length grids, the
completion status and the stage timings."""

from __future__ import annotations

from collections.abc import Callable

from habc_benchmark.config import ExperimentConfig
from habc_benchmark.report.labels import cell_key, label, pct
from habc_benchmark.report.model import Cell, Timing, TrackResults
from habc_benchmark.stages import SFT_CONTINUED


def cell_text(c: Cell | None) -> str:
    if c is None:
        return "pending"
    p = c.pooled
    spread = "" if c.seeds < 2 else f" ({pct(c.rate_min)}–{pct(c.rate_max)})"
    return f"{pct(c.rate_mean)}{spread} [{pct(p.ci_low)}, {pct(p.ci_high)}]"


def len_text(c: Cell | None) -> str:
    if c is None:
        return "pending"
    p = c.pooled
    return "–" if p.len_mean is None else f"{p.len_mean:.0f} ± {p.len_std:.0f}"


def grid_table(
    td: TrackResults, methods: list[str], rounds: list[int], fmt: Callable[[Cell | None], str]
) -> list[str]:
    """One row per method, one column per round; round 0 is SFT for every row, a cell outside
    the method's chain is blank."""
    head = (
        "| method | " + " | ".join("SFT (r0)" if r == 0 else f"round {r}" for r in rounds) + " |"
    )
    lines = [head, "|" + " --- |" * (len(rounds) + 1)]
    for m in methods:
        row = [
            fmt(td.sft) if r == 0 else (fmt(td.cells[(m, r)]) if (m, r) in td.cells else "")
            for r in rounds
        ]
        lines.append(f"| {label(m)} | " + " | ".join(row) + " |")
    return lines


def status_table(td: TrackResults) -> tuple[list[str], list[str]]:
    """The seeds each cell finished, and the cells still missing some seed."""
    lines = ["| cell | seeds finished |", "| --- | --- |"]
    pending = []
    for (method, r), c in td.cells.items():
        key = cell_key(method, r)
        done = [] if c is None else list(c.seed_list)
        missing = [s for s in td.seeds if s not in done]
        if missing:
            pending.append(key)
        lines.append(
            f"| {key} | {', '.join(map(str, done)) or 'none'}"
            + (f" (pending: {', '.join(map(str, missing))})" if missing else "")
            + " |"
        )
    return lines, pending


def timing_lines(t: Timing) -> list[str]:
    if not t.stages:
        return ["No stage timings recorded yet."]
    lines = ["| stage | runs | mean wall s | total wall s |", "| --- | --- | --- | --- |"]
    for name, s in t.stages.items():
        lines.append(f"| {name} | {s.n} | {s.mean_s:.1f} | {s.total_s:.0f} |")
    lines += [
        "",
        "Elapsed (first start to last finish of each protocol seed; seeds may overlap "
        "when workers are free):",
        "",
    ]
    lines += [f"- {k}: {v / 60:.1f} min" for k, v in t.elapsed_s.items()]
    if t.task_s:
        conc = t.concurrency
        lines += [
            "",
            "Task time per protocol seed (the sum of its tasks' wall times, each "
            "task on one thread: how long the seed takes with one worker when the other "
            "core is busy at most with one other task; more tasks at once slow each one "
            "down. Tasks that finished in an earlier, interrupted run count only if their "
            "timing was kept):",
            "",
        ]
        lines += [
            f"- {k}: {v / 60:.1f} min"
            + (
                f" (on average {conc[k]:.1f} tasks running at once, its own included)"
                if k in conc
                else ""
            )
            for k, v in t.task_s.items()
        ]
    return lines


def protocol_table(cfg: ExperimentConfig) -> list[str]:
    """Paper vs this run, one column per track (the pixel track may be smaller)."""
    tracks = cfg.tracks()
    obs = {"state": "privileged env state + proprio", "pixels": "3 cameras + proprio"}
    rows = [
        ("demonstrations", "200", lambda t, n: t.demos),
        ("SFT gradient steps", "(not stated)", lambda t, n: t.sft_steps),
        ("rollouts per round", "100", lambda t, n: t.rollouts_per_round),
        ("gradient steps per round", "6000", lambda t, n: t.steps_per_round),
        ("step-1 rounds", "3", lambda t, n: t.step1_rounds),
        ("step-2 rounds (HABC, HABC+IR)", "(several)", lambda t, n: t.step2_rounds),
        ("methods", "all", lambda t, n: ", ".join(label(m) for m in t.methods)),
        (
            "control arm",
            "–",
            lambda t, n: label(SFT_CONTINUED) if t.sft_continued_control else "–",
        ),
        (
            "ablation arms",
            "–",
            lambda t, n: (
                "; ".join(
                    f"{a}: {v['method']} with `{v.get('train_overrides') or {}}`"
                    for a, v in t.ablations.items()
                )
                or "–"
            ),
        ),
        ("evaluation trials per checkpoint", "50", lambda t, n: t.eval_trials),
        ("protocol seeds", "1 (real robot)", lambda t, n: ", ".join(map(str, cfg.seeds_of(n)))),
        ("observations", "RGB", lambda t, n: f"{t.obs_mode} ({obs[t.obs_mode]})"),
        ("training overrides (all methods)", "–", lambda t, n: f"`{t.train_overrides or '{}'}`"),
    ]
    L = [
        "| quantity | paper | " + " | ".join(f"{n} track" for n in tracks) + " |",
        "| --- | --- | " + " | ".join("---" for _ in tracks) + " |",
    ]
    for name, paper, value in rows:
        L.append(
            f"| {name} | {paper} | "
            + " | ".join(str(value(t, n)) for n, t in tracks.items())
            + " |"
        )
    L.append("")
    if cfg.state.sft_continued_control:
        L += [
            "The control arm trains the SFT checkpoint on, on the demonstrations alone, with "
            "every method's per-round budget and restart (fresh optimizer, LR warm-up): what "
            "it loses or gains against SFT is the round procedure's effect, not the online "
            "data's.",
            "",
        ]
    return L
