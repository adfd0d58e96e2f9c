"""Experiment configuration: the paper's protocol (spec §8) with its sizes as fields.

Presets live in `config/experiment_<name>.yaml` (top-level keys = `ExperimentConfig` fields, an
optional `pixel:` mapping = `TrackConfig` fields for the pixel-mode SFT vs HABC comparison).
Every method gets the same budget and the same hyper-parameters; only the method switch differs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from habc_benchmark.seeds import MAX_PROTOCOL_SEEDS, SeedPlan
from habc_core.cli import coerce_field, coerce_fields
from habc_core.paths import find_config
from habc_trainer.config import TrainConfig
from habc_trainer.methods import METHODS

# Step 1 (spec §8): every baseline and the naive credit-assignment ablation of HABC.
STEP1_METHODS: tuple[str, ...] = ("imit_dagger", "imit_recap", "habc_v", "habc", "habc_naive")
# Step 2: HABC continued without and with intervention reweighting.
STEP2_METHODS: tuple[str, ...] = ("habc", "habc_ir")
OBS_MODES: tuple[str, ...] = ("state", "pixels")
PRESET_DIR = "config"
PRESET_PREFIX = "experiment_"


def _methods() -> set[str]:
    return set(METHODS)


def _train_overrides(where: str, overrides: Any) -> dict[str, Any]:
    """`train_overrides` checked key by key against TrainConfig's fields (names and types),
    so a preset's typo or `batch_size: 5.7` is refused when it loads, not rounds later."""
    if not isinstance(overrides, dict):
        raise ValueError(f"{where}: expected a mapping of training-config keys, got {overrides!r}")
    types = {f.name: f.type for f in fields(TrainConfig)}
    bad = sorted(set(overrides) - set(types))
    if bad:
        raise ValueError(f"{where}: unknown training-config keys {bad}; valid: {sorted(types)}")
    return {k: coerce_field(f"{where}.{k}", types[k], v) for k, v in overrides.items()}


@dataclass(frozen=True)
class TrackConfig:
    """One protocol run: demos -> SFT -> `methods` x `step1_rounds` -> step 2 -> evaluation."""

    obs_mode: str = "state"
    demos: int = 40
    sft_steps: int = 1000
    rollouts_per_round: int = 20
    steps_per_round: int = 300
    step1_rounds: int = 3
    step2_rounds: int = 2
    methods: tuple[str, ...] = STEP1_METHODS
    step2_methods: tuple[str, ...] = STEP2_METHODS
    eval_trials: int = 50
    # also run the SFT-continued control arm (demos only, the same per-round budget)
    sft_continued_control: bool = False
    # ablation arms, run like a step-1 method (own rollouts, same budget) and reported apart:
    # name -> {"method": <trainer method>, "train_overrides": {...}} (e.g. another batch_mix)
    ablations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # training-config keys applied to every method alike (e.g. model_preset, batch_size)
    train_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        coerce_fields(self)  # `demos: true` / `steps_per_round: 5.7` are refused by name
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode: {self.obs_mode!r} is not one of {list(OBS_MODES)}")
        for name in ("demos", "sft_steps", "eval_trials"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        for name in ("rollouts_per_round", "steps_per_round", "step1_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        if self.step2_rounds < 0:
            raise ValueError(f"step2_rounds: must be >= 0, got {self.step2_rounds!r}")
        valid = _methods()
        for name in ("methods", "step2_methods"):
            bad = [m for m in getattr(self, name) if m not in valid or m == "sft"]
            if bad:
                raise ValueError(
                    f"{name}: unknown or non-online methods {bad}; "
                    f"valid: {sorted(valid - {'sft'})}"
                )
        if not self.methods:
            raise ValueError("methods: need at least one step-1 method")
        if self.step2_rounds and "habc" not in self.methods:
            raise ValueError(
                f"step2_rounds: step 2 continues from habc, which is not in methods "
                f"{list(self.methods)}"
            )
        object.__setattr__(
            self, "train_overrides", _train_overrides("train_overrides", self.train_overrides)
        )
        forbidden = {"method", "steps_per_round", "seed"} & set(self.train_overrides)
        if forbidden:
            raise ValueError(f"train_overrides: {sorted(forbidden)} are set by the protocol")
        for name, arm in self.ablations.items():
            where = f"ablations.{name}"
            if name in valid or name in ("sft", "sft_continued"):
                raise ValueError(f"{where}: the name is taken by a method; choose another")
            if not isinstance(arm, dict) or set(arm) - {"method", "train_overrides"}:
                raise ValueError(f"{where}: expected keys method, train_overrides; got {arm!r}")
            if arm.get("method") not in valid or arm.get("method") == "sft":
                raise ValueError(
                    f"{where}.method: {arm.get('method')!r} is not an online "
                    f"method; valid: {sorted(valid - {'sft'})}"
                )
            bad = {"method", "steps_per_round", "seed"} & set(arm.get("train_overrides") or {})
            if bad:
                raise ValueError(f"{where}.train_overrides: {sorted(bad)} are set by the protocol")
            _train_overrides(f"{where}.train_overrides", arm.get("train_overrides") or {})

    @property
    def last_round(self) -> int:
        return self.step1_rounds + (self.step2_rounds if self.step2_methods else 0)

    def seed_plan(
        self, protocol_seed: int, probe_episodes: int = 0, fresh_demos: int = 0
    ) -> SeedPlan:
        return SeedPlan(
            protocol_seed,
            self.demos,
            self.rollouts_per_round,
            self.last_round,
            self.eval_trials,
            probe_episodes,
            fresh_demos,
        )


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "cpu"
    seeds: tuple[int, ...] = (0, 1, 2)
    state: TrackConfig = field(default_factory=TrackConfig)
    pixel: TrackConfig | None = None  # SFT vs HABC in pixel mode (None: not run)
    pixel_seeds: tuple[int, ...] | None = None  # protocol seeds of the pixel track (None: seeds)
    workers: int = 2  # processes; each runs torch with one thread
    probe_episodes: int = 3  # rollouts whose p_v / V_e traces are plotted
    viability_grid: int = 9  # grid points per axis of the viability map
    train_config: str = "config/train_sim.yaml"
    sim_config: str = "config/sim.yaml"
    # The diagnostic (diagnose.py): controlled round-1 arms of the state track and an analysis
    # of SFT on round 1's data, for the protocol seeds in diagnose_seeds (None: every seed).
    diagnose: bool = False
    diagnose_seeds: tuple[int, ...] | None = None
    diagnose_windows: int = 256  # windows drawn per stream for SFT's loss per stream

    def __post_init__(self) -> None:
        coerce_fields(self)  # `workers: true`, `seeds: [0, 1.5]` are refused by name
        object.__setattr__(self, "seeds", _check_seeds("seeds", self.seeds))
        if self.diagnose_seeds is not None:
            ds = tuple(int(s) for s in self.diagnose_seeds)
            bad = sorted(set(ds) - set(self.seeds))
            if bad or len(set(ds)) != len(ds):
                raise ValueError(
                    f"diagnose_seeds: must be distinct protocol seeds of seeds "
                    f"{list(self.seeds)}, got {list(ds)}"
                )
            object.__setattr__(self, "diagnose_seeds", ds)
        if self.diagnose_windows < 1:
            raise ValueError(f"diagnose_windows: must be >= 1, got {self.diagnose_windows!r}")
        if self.diagnose and "habc" not in self.state.methods:
            raise ValueError(
                f"diagnose: needs habc among the methods (its round-1 rollouts are "
                f"the diagnostic's data), got {list(self.state.methods)}"
            )
        if self.pixel_seeds is not None:
            object.__setattr__(self, "pixel_seeds", _check_seeds("pixel_seeds", self.pixel_seeds))
        if self.workers < 1:
            raise ValueError(f"workers: must be >= 1, got {self.workers!r}")
        if self.probe_episodes < 0:
            raise ValueError(f"probe_episodes: must be >= 0, got {self.probe_episodes!r}")
        if self.viability_grid < 2:
            raise ValueError(f"viability_grid: must be >= 2, got {self.viability_grid!r}")
        if self.state.obs_mode != "state":
            raise ValueError(f"state.obs_mode: must be 'state', got {self.state.obs_mode!r}")
        if self.pixel is not None and self.pixel.obs_mode != "pixels":
            raise ValueError(f"pixel.obs_mode: must be 'pixels', got {self.pixel.obs_mode!r}")

    def tracks(self) -> dict[str, TrackConfig]:
        out = {"state": self.state}
        if self.pixel is not None:
            out["pixel"] = self.pixel
        return out

    def seeds_of(self, track: str) -> tuple[int, ...]:
        """The protocol seeds `track` runs (the pixel track may run fewer: it costs more)."""
        if track == "pixel" and self.pixel_seeds is not None:
            return self.pixel_seeds
        return self.seeds

    def diagnosed(self, track: str, seed: int) -> bool:
        """Whether protocol seed `seed` of `track` runs the diagnostic (state track only)."""
        return (
            self.diagnose
            and track == "state"
            and seed in self.seeds
            and (self.diagnose_seeds is None or seed in self.diagnose_seeds)
        )

    def with_seeds(self, seeds: tuple[int, ...]) -> ExperimentConfig:
        """Every track on exactly `seeds` (the CLI's --seeds)."""
        pixel_seeds = None if self.pixel_seeds is None else tuple(seeds)
        diagnose_seeds = (
            None
            if self.diagnose_seeds is None
            else tuple(s for s in self.diagnose_seeds if s in seeds)
        )
        return dataclasses.replace(
            self, seeds=tuple(seeds), pixel_seeds=pixel_seeds, diagnose_seeds=diagnose_seeds
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        if self.pixel_seeds is not None:
            d["pixel_seeds"] = list(self.pixel_seeds)
        if self.diagnose_seeds is not None:
            d["diagnose_seeds"] = list(self.diagnose_seeds)
        return d


def _check_seeds(name: str, seeds: Any) -> tuple[int, ...]:
    out = tuple(int(s) for s in seeds)
    if not out:
        raise ValueError(f"{name}: need at least one protocol seed")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: duplicates in {list(out)}")
    bad = [s for s in out if not 0 <= s < MAX_PROTOCOL_SEEDS]
    if bad:
        raise ValueError(f"{name}: must be in [0, {MAX_PROTOCOL_SEEDS}), got {bad}")
    return out


def _track(d: dict[str, Any], where: str, obs_mode: str) -> TrackConfig:
    valid = {f.name for f in fields(TrackConfig)}
    bad = sorted(set(d) - valid)
    if bad:
        raise ValueError(f"{where}: unknown keys {bad}; valid: {sorted(valid)}")
    return TrackConfig(**{"obs_mode": obs_mode, **d})


def from_dict(d: dict[str, Any]) -> ExperimentConfig:
    d = dict(d)
    top = {f.name for f in fields(ExperimentConfig)} - {"state", "pixel"}
    if "pixel_seeds" in d and "pixel" not in d:
        raise ValueError("pixel_seeds: set, but this preset has no pixel track")
    pixel = d.pop("pixel", None)
    state_keys = {k: d.pop(k) for k in list(d) if k not in top}
    valid_track = {f.name for f in fields(TrackConfig)}
    bad = sorted(set(state_keys) - valid_track)
    if bad:
        raise ValueError(
            f"experiment config: unknown keys {bad}; valid: "
            f"{sorted(top | valid_track | {'pixel'})}"
        )
    return ExperimentConfig(
        state=_track(state_keys, "experiment config", "state"),
        pixel=None if pixel is None else _track(pixel, "pixel", "pixels"),
        **d,
    )


def find_root(start: Path | None = None) -> Path:
    """The directory holding config/ (the workspace, or the installed share directory): the
    one above `start` (default: the current directory) if any, else habc_core's lookup."""
    found = find_config("sim.yaml", start=start or Path.cwd())
    if found is None:
        raise FileNotFoundError("could not find the workspace root (config/sim.yaml)")
    return found.parent.parent


def preset_names(root: Path) -> list[str]:
    return sorted(
        p.stem[len(PRESET_PREFIX) :] for p in (root / PRESET_DIR).glob(f"{PRESET_PREFIX}*.yaml")
    )


def load_preset(name: str, root: Path | None = None) -> ExperimentConfig:
    """`config/experiment_<name>.yaml`; an unknown name lists the valid ones."""
    root = root or find_root()
    path = root / PRESET_DIR / f"{PRESET_PREFIX}{name}.yaml"
    if not path.is_file():
        raise ValueError(f"preset: unknown preset {name!r}; valid: {preset_names(root)}")
    d = yaml.safe_load(path.read_text()) or {}
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping")
    d.setdefault("name", name)
    return from_dict(d)
