"""Result plots (pure matplotlib, Agg backend: no display needed).

Each function takes plain numbers (lists / arrays / dicts), writes one PNG and returns its path:

* `success_vs_round`: success rate per round per method with interval bars (paper Fig. 3);
* `length_vs_round`: mean trajectory length over successes ± std per round per method;
* `gate_histograms`: g_t per source (successful / failed rollout, intervention windows);
* `value_traces`: p_v and normalised V_e along episodes with the operator's authority shaded
  (paper Fig. 4 right / Fig. 5);
* `viability_map`: p_v at the initial state over initial object positions (paper Fig. 4 left).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless machines and worker processes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 110


@dataclass(frozen=True)
class Point:
    """One (round, value) of a curve with an interval [low, high] around `value`."""

    round: int
    value: float
    low: float
    high: float


def _save(fig: plt.Figure, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _legend(ax: plt.Axes, **kw: object) -> None:
    """A legend only when something is labelled (an empty one only warns)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _curves(ax: plt.Axes, curves: Mapping[str, Sequence[Point]]) -> None:
    n = max(len(curves), 1)
    for i, (name, pts) in enumerate(curves.items()):
        if not pts:
            continue
        # small horizontal offsets keep overlapping interval bars readable
        dx = (i - (n - 1) / 2) * 0.06
        x = np.array([p.round for p in pts], dtype=float) + dx
        y = np.array([p.value for p in pts])
        err = np.array([[p.value - p.low for p in pts], [p.high - p.value for p in pts]])
        ax.errorbar(x, y, yerr=np.clip(err, 0, None), marker="o", capsize=3, label=name)


def success_vs_round(
    curves: Mapping[str, Sequence[Point]],
    path: Path | str,
    *,
    title: str = "Success rate per round",
    reference: float | None = None,
    ylabel: str = "success rate",
) -> Path:
    """Rates in [0, 1] per round; `reference` draws a dashed line (e.g. SFT)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    _curves(ax, curves)
    if reference is not None:
        ax.axhline(reference, color="grey", ls="--", lw=1, label="SFT")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=8, loc="best")
    return _save(fig, path)


def length_vs_round(
    curves: Mapping[str, Sequence[Point]],
    path: Path | str,
    *,
    title: str = "Trajectory length over successful trials",
) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    _curves(ax, curves)
    ax.set_xlabel("round")
    ax.set_ylabel("frames (mean ± std)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=8, loc="best")
    return _save(fig, path)


def gate_histograms(
    panels: Mapping[str, Mapping[str, Sequence[int]]],
    bins: Sequence[float],
    path: Path | str,
    *,
    title: str = "g_t per source",
) -> Path:
    """panels: {panel title: {source: counts per bin}}; one subplot per panel, densities."""
    names = list(panels)
    fig, axes = plt.subplots(
        1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.4), squeeze=False
    )
    edges = np.asarray(bins, dtype=float)
    width = np.diff(edges)
    for ax, name in zip(axes[0], names, strict=False):
        for source, counts in panels[name].items():
            c = np.asarray(counts, dtype=float)
            if c.sum() == 0:
                continue
            ax.stairs(c / (c.sum() * width), edges, label=source, fill=False, lw=1.5)
        ax.axvline(1.0, color="grey", ls=":", lw=1)
        ax.set_xlabel("g_t")
        ax.set_title(name, fontsize=9)
        _legend(ax, fontsize=7)
    axes[0][0].set_ylabel("density")
    fig.suptitle(title)
    return _save(fig, path)


def _spans(mask: Sequence[bool]) -> list[tuple[int, int]]:
    """[start, end) runs of True."""
    out, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


def value_traces(
    episodes: Sequence[Mapping[str, object]],
    path: Path | str,
    *,
    title: str = "Critic along rollouts",
) -> Path:
    """episodes: dicts with `p_v`, `v_e_norm` (per frame), `human` (per frame bool) and a
    `label`; human-controlled frames are shaded."""
    n = max(len(episodes), 1)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.3 * n), squeeze=False, sharex=False)
    for ax, ep in zip(axes[:, 0], episodes, strict=False):
        p_v = np.asarray(ep["p_v"], dtype=float)
        ve = np.asarray(ep["v_e_norm"], dtype=float)
        t = np.arange(len(p_v))
        for a, b in _spans(ep.get("human", [])):
            ax.axvspan(a, b, color="tab:orange", alpha=0.25, lw=0)
        ax.plot(t, p_v, label="p_v (viability)")
        ax.plot(t, ve, label="1 + V_e / T_max (efficiency)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("value")
        ax.set_title(str(ep.get("label", "")), fontsize=9)
    axes[-1, 0].set_xlabel("frame (shaded: operator in control)")
    _legend(axes[0, 0], fontsize=7, loc="lower right")
    fig.suptitle(title)
    return _save(fig, path)


def viability_map(
    x: Sequence[float],
    y: Sequence[float],
    p_v: Sequence[Sequence[float]],
    path: Path | str,
    *,
    title: str = "p_v at the initial state",
    xlabel: str = "marker x (m)",
    ylabel: str = "marker y (m)",
    vmax: float | None = None,
) -> Path:
    """p_v[i][j] at (x[j], y[i]). The colour scale runs from 0 to `vmax` (default: the map's
    maximum, at least 0.05) so structure stays visible when p_v is small everywhere."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    grid = np.asarray(p_v, dtype=float)
    top = vmax if vmax is not None else max(float(grid.max()), 0.05)
    im = ax.pcolormesh(
        np.asarray(x), np.asarray(y), grid, shading="nearest", vmin=0.0, vmax=top, cmap="viridis"
    )
    fig.colorbar(im, ax=ax, label="p_v")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)
