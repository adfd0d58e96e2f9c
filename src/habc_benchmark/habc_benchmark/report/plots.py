"""The report's figures (habc_trainer.plots draws them), from the typed results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from habc_benchmark.config import TrackConfig
from habc_benchmark.report.labels import label
from habc_benchmark.report.model import Cell, Report, TrackResults
from habc_benchmark.stages import SFT, SFT_CONTINUED
from habc_benchmark.stats import wilson_interval

PROGRESS_MILESTONE = "marker_grasped"  # the first milestone that needs a precise grasp


def starts_from_sft(method: str, tcfg: TrackConfig) -> bool:
    """Step-1 arms and the control start at SFT; a step-2 arm starts where habc's step 1 ended."""
    return method in tcfg.methods or method in tcfg.ablations or method == SFT_CONTINUED


def _start_cell(method: str, tcfg: TrackConfig) -> tuple[str, int]:
    return (SFT, 0) if starts_from_sft(method, tcfg) else ("habc", tcfg.step1_rounds)


def _by_method(td: TrackResults) -> dict[str, list[tuple[int, Cell]]]:
    """Every finished cell but SFT's, per method, in round order."""
    out: dict[str, list[tuple[int, Cell]]] = {}
    for (method, r), c in td.cells.items():
        if c is not None:
            out.setdefault(method, []).append((r, c))
    out.pop(SFT, None)
    return {m: sorted(pts, key=lambda x: x[0]) for m, pts in out.items()}


def _curves(td: TrackResults, plots: Any) -> tuple[dict[str, list], dict[str, list]]:
    """Success and successful-trajectory length per round, each curve from its start cell."""
    curves, lengths = {}, {}
    for method, pts in _by_method(td).items():
        start = td.cell(*_start_cell(method, td.config))
        seq = ([(start.round_index, start)] if start else []) + pts
        curves[label(method)] = [
            plots.Point(r, c.rate_mean, c.pooled.ci_low, c.pooled.ci_high) for r, c in seq
        ]
        lengths[label(method)] = [
            plots.Point(
                r,
                c.pooled.len_mean,
                c.pooled.len_mean - c.pooled.len_std,
                c.pooled.len_mean + c.pooled.len_std,
            )
            for r, c in seq
            if c.pooled.len_mean is not None and c.pooled.len_std is not None
        ]
    return curves, lengths


def milestone_curves(td: TrackResults, milestone: str, plots: Any) -> dict[str, list]:
    """Share of evaluation trials reaching `milestone` per round, pooled over seeds: partial
    progress, readable even where every success rate is 0."""

    def point(method: str, r: int) -> Any:
        trials = td.trials.get((method, r), ())
        if not trials:
            return None
        k = sum(milestone in t.milestones for t in trials)
        lo, hi = wilson_interval(k, len(trials))
        return plots.Point(r, k / len(trials), lo, hi)

    curves = {}
    for method, pts in _by_method(td).items():
        seq = [point(*_start_cell(method, td.config))] + [point(method, r) for r, _ in pts]
        curves[label(method)] = [p for p in seq if p is not None]
    return curves


def _probe_plots(td: TrackResults, fig_dir: Path, plots: Any) -> dict[str, str]:
    """The first probed seed's g_t histograms, value traces and viability map."""
    if not td.probes:
        return {}
    track = td.name
    seed = min(td.probes)
    pr = td.probes[seed]
    out: dict[str, str] = {}
    panels = {}
    bins = None
    for name, g in pr.gate.items():
        bins = g.bins  # every probe of a seed shares its bins; the last one is drawn
        method, stream = name.split("/")[:2]
        panels[label(method) + f" ({stream})"] = {
            src: list(v.counts) for src, v in g.sources.items()
        }
    if panels and bins is not None:
        out[f"{track}_gate"] = str(
            plots.gate_histograms(
                panels,
                list(bins),
                fig_dir / f"{track}_g_hist.png",
                title=f"g_t per source on each method's replay buffer (seed {seed})",
            )
        )
    if pr.traces:
        eps = [
            dict(t) | {"label": f"seed {t['seed']}: {t['outcome']} in {t['length']} frames"}
            for t in pr.traces
        ]
        out[f"{track}_traces"] = str(
            plots.value_traces(
                eps,
                fig_dir / f"{track}_value_traces.png",
                title=f"{pr.traces_checkpoint} critic along its own rollouts "
                f"(seed {seed}; shaded: operator)",
            )
        )
    vm = pr.viability_map
    if vm:
        out[f"{track}_viability"] = str(
            plots.viability_map(
                vm["x"],
                vm["y"],
                vm["p_v"],
                fig_dir / f"{track}_viability_map.png",
                title=f"p_v(s_0) over marker position ({vm['checkpoint']}, seed {seed})",
            )
        )
    return out


def make_plots(report: Report, fig_dir: Path) -> dict[str, str]:
    """Every figure the finished cells allow, by name ('<track>_<figure>') -> its path."""
    # deferred: habc_trainer.plots imports matplotlib (and habc_trainer torch)
    from habc_trainer import plots

    out: dict[str, str] = {}
    for track, td in report.tracks.items():
        curves, lengths = _curves(td, plots)
        sft = td.sft
        if curves or sft is not None:
            out[f"{track}_success"] = str(
                plots.success_vs_round(
                    curves,
                    fig_dir / f"{track}_success_vs_round.png",
                    title=f"Success per round ({track} observations; mean over seeds, "
                    "pooled Wilson 95 %)",
                    reference=None if sft is None else sft.rate_mean,
                )
            )
        progress = milestone_curves(td, PROGRESS_MILESTONE, plots)
        if progress:
            out[f"{track}_progress"] = str(
                plots.success_vs_round(
                    progress,
                    fig_dir / f"{track}_progress_vs_round.png",
                    title=f"Trials reaching '{PROGRESS_MILESTONE}' ({track}; pooled Wilson 95 %)",
                    ylabel=f"share reaching {PROGRESS_MILESTONE}",
                )
            )
        if lengths:
            out[f"{track}_length"] = str(
                plots.length_vs_round(
                    lengths,
                    fig_dir / f"{track}_length_vs_round.png",
                    title=f"Trajectory length over successes ({track})",
                )
            )
        out |= _probe_plots(td, fig_dir, plots)
    return out
