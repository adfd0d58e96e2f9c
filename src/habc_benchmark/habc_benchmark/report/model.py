"""The report's typed view of results.json: every renderer reads these, never the raw dict.

Built once from the dict `collect.results_dict` returns (the same dict results.json holds), so
the markdown says exactly what the JSON does. Mappings keep the JSON's order (chains order for
cells, the preset's order for seeds): tables and "best of" ties depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from habc_benchmark.config import ExperimentConfig, TrackConfig
from habc_benchmark.report.diagnose_model import DiagnoseResults
from habc_benchmark.report.labels import parse_cell_key
from habc_benchmark.stages import SFT
from habc_benchmark.stats import Summary

CellKey = tuple[str, int]  # (method, round)


@dataclass(frozen=True)
class Count:
    """Successes out of n trials."""

    successes: int
    n: int

    @property
    def rate(self) -> float:
        return self.successes / self.n


def matched(per_seed: Mapping[int, Count], seeds: Iterable[int]) -> Count:
    """Successes and trials over `seeds` only (comparisons on the same seeds)."""
    per = [per_seed[s] for s in seeds if s in per_seed]
    return Count(sum(c.successes for c in per), sum(c.n for c in per))


def seed_counts(per_seed: Mapping[str, Mapping[str, Any]]) -> dict[int, Count]:
    """results.json's per_seed summaries (keyed by the seed as a string) as counts."""
    return {int(s): Count(int(v["successes"]), int(v["n"])) for s, v in per_seed.items()}


@dataclass(frozen=True)
class Cell:
    """One (method, round) checkpoint evaluated over the protocol seeds that finished it."""

    method: str
    round_index: int
    seeds: int
    rate_mean: float
    rate_min: float
    rate_max: float
    pooled: Summary
    per_seed: Mapping[int, Count]
    seed_list: tuple[int, ...]

    def matched(self, seeds: Iterable[int]) -> Count:
        return matched(self.per_seed, seeds)

    @staticmethod
    def from_dict(key: str, d: Mapping[str, Any]) -> Cell:
        method, r = parse_cell_key(key)
        return Cell(
            method=method,
            round_index=r,
            seeds=int(d["seeds"]),
            rate_mean=d["rate_mean"],
            rate_min=d["rate_min"],
            rate_max=d["rate_max"],
            pooled=Summary(**d["pooled"]),
            per_seed=seed_counts(d["per_seed"]),
            seed_list=tuple(d["seed_list"]),
        )


@dataclass(frozen=True)
class Trial:
    success: bool
    length: int
    milestones: tuple[str, ...]


@dataclass(frozen=True)
class RolloutRecord:
    """What one round's rollouts of one seed contained."""

    episodes: int
    kinds: Mapping[str, int]
    lengths: tuple[int, ...]
    outcomes: tuple[str, ...]


@dataclass(frozen=True)
class TrainRecord:
    """One training round of one seed: its logged scalars and what it trained on."""

    metrics: Mapping[str, float]
    checkpoint: str | None
    stream_sizes: Mapping[str, int]
    steps: int


@dataclass(frozen=True)
class SeedRecords:
    rollouts: Mapping[CellKey, RolloutRecord]
    train: Mapping[CellKey, TrainRecord]

    @staticmethod
    def from_dict(recs: Mapping[str, Mapping[str, Any]]) -> SeedRecords:
        rollouts, train = {}, {}
        for name, rec in recs.items():
            kind, _, cell = name.partition("_")
            method, _, r = cell.rpartition("_r")
            if kind == "rollouts":
                rollouts[(method, int(r))] = RolloutRecord(
                    episodes=int(rec["episodes"]),
                    kinds=dict(rec["kinds"]),
                    lengths=tuple(rec.get("lengths", ())),
                    outcomes=tuple(rec.get("outcomes", ())),
                )
            elif kind == "train":
                train[(method, int(r))] = TrainRecord(
                    metrics=dict(rec.get("metrics", {})),
                    checkpoint=rec.get("checkpoint"),
                    stream_sizes=dict(rec.get("stream_sizes", {})),
                    steps=int(rec.get("steps", 0)),
                )
        return SeedRecords(rollouts, train)


@dataclass(frozen=True)
class GateSource:
    """g_t of a critic on one source of its replay buffer (probes.py)."""

    mean: float
    std: float
    n: int
    counts: tuple[int, ...]


@dataclass(frozen=True)
class GateProbe:
    bins: tuple[float, ...] | None
    sources: Mapping[str, GateSource]


@dataclass(frozen=True)
class ValueCalibration:
    """A critic's p_v at the held-out initial states against its data's policy's outcomes."""

    p_v_s0_mean: float
    p_v_s0_std: float
    policy_success: float | None
    auc: float | None
    brier: float


@dataclass(frozen=True)
class SeedProbes:
    gate: Mapping[str, GateProbe]
    calibration: Mapping[str, ValueCalibration]
    traces: tuple[Mapping[str, Any], ...]  # plotted as they are (habc_trainer.plots)
    traces_checkpoint: str | None
    viability_map: Mapping[str, Any] | None

    @staticmethod
    def from_dict(pr: Mapping[str, Any]) -> SeedProbes:
        gate = {
            name: GateProbe(
                bins=None if g.get("bins") is None else tuple(g["bins"]),
                sources={
                    src: GateSource(v["mean"], v["std"], v["n"], tuple(v["counts"]))
                    for src, v in g.items()
                    if isinstance(v, dict)
                },
            )
            for name, g in pr.get("gate", {}).items()
        }
        cal = {
            name: ValueCalibration(
                c["p_v_s0_mean"],
                c["p_v_s0_std"],
                c.get("policy_success"),
                c.get("auc"),
                c.get("brier", float("nan")),
            )
            for name, c in pr.get("calibration", {}).items()
        }
        return SeedProbes(
            gate,
            cal,
            tuple(pr.get("traces") or ()),
            pr.get("traces_checkpoint"),
            pr.get("viability_map") or None,
        )


@dataclass(frozen=True)
class Phase:
    """Held-out BCE / ECE of a round's critic at one phase of the round (train_round)."""

    samples: int
    bce: float | None
    ece: float | None
    success_rate: float | None


CriticCalibration = Mapping[str, Phase]  # phase name -> phase


def _phases(c: Mapping[str, Any]) -> dict[str, Phase]:
    return {
        name: Phase(int(p.get("samples", 0)), p.get("bce"), p.get("ece"), p.get("success_rate"))
        for name, p in c.items()
    }


@dataclass(frozen=True)
class TrackResults:
    name: str
    config: TrackConfig
    seeds: tuple[int, ...]
    cells: Mapping[CellKey, Cell | None]  # every cell of the grid; None: no seed finished it
    trials: Mapping[CellKey, tuple[Trial, ...]]
    records: Mapping[int, SeedRecords]
    probes: Mapping[int, SeedProbes]
    critic_calibration: Mapping[CellKey, Mapping[int, CriticCalibration]]

    def cell(self, method: str, round_index: int) -> Cell | None:
        return self.cells.get((method, round_index))

    @property
    def sft(self) -> Cell | None:
        return self.cell(SFT, 0)

    def train_records(self, method: str, round_index: int) -> list[TrainRecord]:
        """That round's training record of every seed that has one, in seed order."""
        key = (method, round_index)
        return [rs.train[key] for rs in self.records.values() if key in rs.train]

    def rollout_records(self, method: str, round_index: int) -> list[RolloutRecord]:
        key = (method, round_index)
        return [rs.rollouts[key] for rs in self.records.values() if key in rs.rollouts]

    @staticmethod
    def from_dict(name: str, cfg: ExperimentConfig, td: Mapping[str, Any]) -> TrackResults:
        cells = {
            parse_cell_key(k): None if a is None else Cell.from_dict(k, a)
            for k, a in td["cells"].items()
        }
        trials = {
            parse_cell_key(k): tuple(
                Trial(bool(t["success"]), int(t["length"]), tuple(t["milestones"])) for t in ts
            )
            for k, ts in td.get("trials", {}).items()
        }
        return TrackResults(
            name=name,
            config=cfg.tracks()[name],
            seeds=tuple(cfg.seeds_of(name)),
            cells=cells,
            trials=trials,
            records={int(s): SeedRecords.from_dict(r) for s, r in td["records"].items()},
            probes={int(s): SeedProbes.from_dict(p) for s, p in td["probes"].items()},
            critic_calibration={
                parse_cell_key(k): {int(s): _phases(c) for s, c in per.items()}
                for k, per in td.get("critic_calibration", {}).items()
            },
        )


@dataclass(frozen=True)
class StageTime:
    n: int
    mean_s: float
    total_s: float


@dataclass(frozen=True)
class Timing:
    """Stage wall times and per-seed elapsed / task time ('track/seed' keys)."""

    stages: Mapping[str, StageTime]
    elapsed_s: Mapping[str, float]
    task_s: Mapping[str, float]
    concurrency: Mapping[str, float]

    @staticmethod
    def from_dict(t: Mapping[str, Any] | None) -> Timing:
        t = t or {}
        return Timing(
            stages={k: StageTime(**v) for k, v in t.get("stages", {}).items()},
            elapsed_s=dict(t.get("elapsed_s", {})),
            task_s=dict(t.get("task_s", {})),
            concurrency=dict(t.get("concurrency", {})),
        )


@dataclass(frozen=True)
class Report:
    config: ExperimentConfig
    tracks: Mapping[str, TrackResults]
    timing: Timing
    t_max: int
    generated: str
    commit: str | None
    diagnose: DiagnoseResults

    @staticmethod
    def from_results(results: Mapping[str, Any], cfg: ExperimentConfig) -> Report:
        return Report(
            config=cfg,
            tracks={
                name: TrackResults.from_dict(name, cfg, td)
                for name, td in results["tracks"].items()
            },
            timing=Timing.from_dict(results.get("timing")),
            t_max=int(results.get("t_max") or 0),
            generated=results["generated"],
            commit=results.get("commit"),
            diagnose=DiagnoseResults.from_dict(results.get("diagnose")),
        )
