"""results.json, the plots and docs/results.md, from whatever the runner finished.

Nothing here is hand-written data: every number comes from the evaluation JSONs, the stage
records and the probes under the run directory. Missing cells are listed as pending.

| module | job |
| --- | --- |
| `collect.py` | the run directory -> the results.json dict (cells, trials, records, timings) |
| `model.py` | that dict as frozen dataclasses: what every renderer reads |
| `claims.py` | the paper's claims on the state track: a `Verdict` and typed evidence each |
| `comparisons.py` | matched-seed comparisons: arm vs SFT, ablation vs base, the control arm |
| `prose.py` | the sentences of claims and comparisons |
| `reading.py` | the "Reading" sections |
| `tables.py` | protocol, success / length grids, completion status, timings |
| `diagnostics.py` | the "Diagnostics" tables (milestones, rollouts, batches, critic, probes) |
| `plots.py` | the figures (habc_trainer.plots) |
| `diagnose_model.py` | results.json's "diagnose" part as frozen dataclasses |
| `diagnose_section.py` | the diagnostic's part of results.json and its section (diagnose.py) |
| `markdown.py` | results.md assembled from the above |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from habc_benchmark.config import ExperimentConfig
from habc_benchmark.report import diagnose_section
from habc_benchmark.report.collect import collect_track, results_dict
from habc_benchmark.report.markdown import write_markdown
from habc_benchmark.report.model import Report
from habc_benchmark.report.plots import make_plots
from habc_benchmark.stages import read_json, write_json


def build_report(
    cfg: ExperimentConfig, out: Path, root: Path, docs: Path, command: str
) -> dict[str, Any]:
    """Collect every finished cell under `out`, write results.json, plots and results.md."""
    data = {t: collect_track(cfg, t, out, root) for t in cfg.tracks()}
    progress = read_json(out / "progress.json")
    results = results_dict(cfg, data, progress, root)
    results["diagnose"] = diagnose_section.collect(cfg, out, root, data["state"].records)
    fig_dir = docs / "results"
    write_json(fig_dir / "results.json", results)
    report = Report.from_results(results, cfg)
    figs = make_plots(report, fig_dir)
    write_markdown(report, figs, docs / "results.md", command)
    return results
