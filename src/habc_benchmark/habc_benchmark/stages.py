"""One protocol stage per function: demos, rollouts, a training round, an evaluation.

Every stage writes its result (a record JSON with what it did and how long it took) last and
atomically, so a record on disk means the stage finished; a killed stage is redone from scratch
(rollouts: the round's bags are removed first; training: train_round resumes its own partial
checkpoint). Stages run in worker processes and take only picklable arguments.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from habc_benchmark.config import TrackConfig
from habc_benchmark.evaluation import EvalConfig, evaluate_policy, load_sim, rig_policy_factory
from habc_benchmark.seeds import SeedPlan
from habc_control.collect import BagSink, CollectConfig, Collector
from habc_core.contract import round_dir_name
from habc_core.features import CAMERA_NAMES
from habc_trainer.config import TrainConfig
from habc_trainer.convert import convert
from habc_trainer.episode import ExtractConfig

# Deferred to the stage that needs it: torch (habc_trainer's store_streams, train_round,
# diagnostics), mujoco (habc_sim.env) and tensorboard, so planning and the report load none.

SFT = "sft"
# Control arm: SFT trained on, on the demos alone, round by round with every method's per-round
# budget and restart (fresh optimizer, LR warm-up). It separates what the round procedure does
# to the SFT policy from what the online data does.
SFT_CONTINUED = "sft_continued"
# The diagnostic's own round-1 arms (diagnose.py): SFT on the demos + as many fresh expert demos
# as round 1 has rollouts, and filtered BC on the demos + round 1's successful rollouts. Both
# train on round 1 of DIAGNOSE_ROLLOUTS_OF, whose rollouts are every method's round 1 (the SFT
# checkpoint on the same episode seeds).
FRESH_DEMOS = "fresh_demos"
FILTERED_BC = "filtered_bc"
DIAGNOSE_ROLLOUTS_OF = "habc"
# The converter's default gripper bound (-0.01 m) rejects whole episodes in which the simulated
# fingers read down to -0.03 m squeezed shut on nothing and up to 0.11 m pushed open (soft
# joint limits; the stroke is 0.088 m). Those are real readings of the rig, not corrupt data,
# so the experiment accepts them.
SIM_GRIPPER_RANGE = (-0.05, 0.15)


@dataclass(frozen=True)
class SeedContext:
    """Where one protocol seed of one track lives, and what it runs."""

    track_name: str
    track: TrackConfig
    protocol_seed: int
    root: Path  # <out>/<track>/seed_<s>
    sim_config: str  # absolute paths: workers may not share the parent's cwd
    train_config: str
    probe_episodes: int = 0
    viability_grid: int = 9
    diagnose: bool = False  # this seed runs the diagnostic (diagnose.py)
    diagnose_windows: int = 256

    @property
    def plan(self) -> SeedPlan:
        fresh = self.track.rollouts_per_round if self.diagnose else 0
        return self.track.seed_plan(self.protocol_seed, self.probe_episodes, fresh)

    # --- layout ---
    @property
    def demos_dir(self) -> Path:
        return self.root / "data" / "demos"

    def data_dir(self, method: str) -> Path:
        return self.root / "data" / method

    def store_dir(self, method: str) -> Path:
        return self.root / "store" / method

    @property
    def ckpt_root(self) -> Path:
        return self.root / "ckpt"

    def trainer_method(self, arm: str) -> str:
        """The trainer's method behind an arm (the control trains `sft`, an ablation its own)."""
        if arm in (SFT_CONTINUED, FRESH_DEMOS):
            return SFT
        if arm in self.track.ablations:
            return self.track.ablations[arm]["method"]
        return arm

    def ckpt_root_of(self, arm: str) -> Path:
        # an arm that trains with another arm's trainer method gets its own root
        return self.ckpt_root / arm if self.trainer_method(arm) != arm else self.ckpt_root

    def ckpt(self, method: str, round_index: int) -> Path:
        # train_round's round_dir, spelled with the contract's name so a path needs no torch
        root = self.ckpt_root_of(method)
        return root / self.trainer_method(method) / round_dir_name(round_index)

    def record(self, kind: str, method: str = SFT, round_index: int = 0) -> Path:
        return self.root / "records" / f"{kind}_{method}_r{round_index:03d}.json"

    def eval_json(self, method: str, round_index: int) -> Path:
        return self.root / "eval" / method / f"round_{round_index:03d}.json"

    @property
    def probes_json(self) -> Path:
        return self.root / "probes.json"

    @property
    def diagnose_json(self) -> Path:
        return self.root / "diagnose.json"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float), "utf-8")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def use_one_thread() -> None:
    import torch  # deferred: heavy, and only a worker running a stage needs it

    torch.set_num_threads(1)  # workers share the CPU; one thread each avoids oversubscription


def seed_env(ctx: SeedContext) -> Any:
    """The simulated rig of this seed's track (its observation mode), for one stage."""
    from habc_sim.env import PouchEnv  # deferred: mujoco

    return PouchEnv(load_sim(ctx.sim_config), obs_mode=ctx.track.obs_mode)


def _collect(
    ctx: SeedContext, mode: str, seeds: range, out: Path, round_index: int, policy: str | None
) -> dict[str, Any]:
    """Run episodes through collect's Collector into bags under `out`."""
    env = seed_env(ctx)
    cfg = CollectConfig(mode=mode, episodes=len(seeds), seed=seeds.start, round=round_index)
    sink = BagSink(out, write_images=env.obs_mode == "pixels")
    factory = (
        None if policy is None else rig_policy_factory(policy, env, cfg.horizon, cfg.execute_steps)
    )
    collector = Collector(env, cfg, sink, factory)
    t0 = time.perf_counter()
    results = []
    try:
        for seed in seeds:
            results.append(collector.run_episode(seed))
    finally:
        env.close()
    wall = time.perf_counter() - t0
    kinds = Counter(r.kind for r in results)
    ticks = sum(r.ticks for r in results)
    return {
        "episodes": len(results),
        "seeds": [seeds.start, seeds.stop],
        "kinds": dict(kinds),
        "success": sum(r.outcome == "success" for r in results),
        "autonomous_success": kinds.get("autonomous_success", 0),
        "intervened": sum(r.intervened for r in results),
        "ticks": ticks,
        "wall_s": wall,
        "ticks_per_s": ticks / max(wall, 1e-9),
        "lengths": [int(r.ticks) for r in results],
        "outcomes": [r.outcome for r in results],
    }


def run_demos(ctx: SeedContext) -> dict[str, Any]:
    use_one_thread()
    shutil.rmtree(ctx.demos_dir, ignore_errors=True)  # a half-written set is redone
    rec = _collect(ctx, "demo", ctx.plan.demo_seeds(), ctx.demos_dir, 0, None)
    write_json(ctx.record("demos"), rec)
    return rec


def _round_bag_dir(data_dir: Path, round_index: int) -> list[Path]:
    return sorted(data_dir.glob(f"*/{round_dir_name(round_index)}"))


def run_fresh_demos(ctx: SeedContext) -> dict[str, Any]:
    """The diagnostic's fresh expert demos (seeds after the protocol's demos, same block)."""
    use_one_thread()
    shutil.rmtree(ctx.data_dir(FRESH_DEMOS), ignore_errors=True)
    rec = _collect(ctx, "demo", ctx.plan.fresh_demo_seeds(), ctx.data_dir(FRESH_DEMOS), 0, None)
    write_json(ctx.record("demos", FRESH_DEMOS), rec)
    return rec


def run_rollouts(ctx: SeedContext, method: str, round_index: int, policy: Path) -> dict[str, Any]:
    """Round `round_index`'s rollouts by `policy` (the method's checkpoint of round - 1), with
    the simulated operator intervening on about half of the failures."""
    use_one_thread()
    for d in _round_bag_dir(ctx.data_dir(method), round_index):
        shutil.rmtree(d)
    rec = _collect(
        ctx,
        "rollout",
        ctx.plan.rollout_seeds(round_index),
        ctx.data_dir(method),
        round_index,
        str(policy),
    )
    rec["policy"] = str(policy)
    write_json(ctx.record("rollouts", method, round_index), rec)
    return rec


def train_config(ctx: SeedContext, method: str, steps: int) -> Any:
    """The same TrainConfig for every method but the method switch (and SFT's step count)."""
    overrides: dict[str, Any] = {
        # V_e's range is the task's step limit (the sim's T_max), whatever the YAML assumed.
        "t_max": float(load_sim(ctx.sim_config).task.t_max),
        "num_threads": 1,
        **ctx.track.train_overrides,
        **(ctx.track.ablations.get(method, {}).get("train_overrides") or {}),
        "method": ctx.trainer_method(method),
        "steps_per_round": steps,
        "seed": ctx.protocol_seed,
    }
    if ctx.track.obs_mode == "pixels":
        mo = dict(overrides.get("model_overrides", {}))
        mo.setdefault("cameras", list(CAMERA_NAMES))
        # the policy sees the rig's renders as they are: train at the rendered resolution
        mo.setdefault("image_size", int(load_sim(ctx.sim_config).scene.image_size))
        overrides["model_overrides"] = mo
    return TrainConfig.from_yaml(ctx.train_config, **overrides)


def data_roots(ctx: SeedContext, method: str, round_index: int) -> list[Path]:
    """The replay buffer of `method` at `round_index`: demos + its own rollouts; a step-2 arm
    other than habc starts with habc's step-1 rollouts (it continues habc's round)."""
    roots = [ctx.demos_dir]
    if method in (SFT, SFT_CONTINUED):
        return roots
    if method == FRESH_DEMOS:
        return roots + [ctx.data_dir(FRESH_DEMOS)]
    if method == FILTERED_BC and method not in ctx.track.methods:
        return roots + _round_bag_dir(ctx.data_dir(DIAGNOSE_ROLLOUTS_OF), 1)
    step1 = ctx.track.step1_rounds
    if method not in (*ctx.track.methods, *ctx.track.ablations) and round_index > step1:
        for r in range(1, step1 + 1):
            roots += _round_bag_dir(ctx.data_dir("habc"), r)
    if ctx.data_dir(method).is_dir():
        roots.append(ctx.data_dir(method))
    return roots


def init_checkpoint(ctx: SeedContext, method: str, round_index: int) -> Path | None:
    if method == SFT:
        return None
    if round_index == 1:
        return ctx.ckpt(SFT, 0)
    if method == SFT_CONTINUED:
        return ctx.ckpt(SFT_CONTINUED, round_index - 1)
    if is_step2_start(ctx, method, round_index):
        return ctx.ckpt("habc", round_index - 1)
    return ctx.ckpt(method, round_index - 1)


def is_step2_start(ctx: SeedContext, method: str, round_index: int) -> bool:
    """Round 1 of a step-2 arm other than habc: it continues habc's last step-1 checkpoint."""
    step1_arms = set(ctx.track.methods) | set(ctx.track.ablations)
    return method not in step1_arms and round_index == ctx.track.step1_rounds + 1


def extract_config(ctx: SeedContext, cfg: Any) -> Any:
    """How bags become store arrays for a TrainConfig: the cameras and resolution it consumes."""
    model = cfg.model_config()
    return ExtractConfig(
        cameras=tuple(model.cameras),
        image_size=model.image_size,
        use_env_state=ctx.track.obs_mode == "state",
        gripper_range=SIM_GRIPPER_RANGE,
    )


def run_train(ctx: SeedContext, method: str, round_index: int) -> dict[str, Any]:
    # deferred: torch
    from habc_trainer.store_streams import open_streams
    from habc_trainer.train_round import run_round

    use_one_thread()
    steps = ctx.track.sft_steps if method == SFT else ctx.track.steps_per_round
    cfg = train_config(ctx, method, steps)
    t0 = time.perf_counter()
    conv = convert(
        data_roots(ctx, method, round_index), ctx.store_dir(method), extract_config(ctx, cfg)
    )
    t_conv = time.perf_counter() - t0
    streams = open_streams(ctx.store_dir(method), round_index, cfg)
    if cfg.method_config().gate == "success":
        from habc_trainer.diagnostics import success_only  # deferred: torch

        # filtered BC: its D_auto share goes to kept frames only (update.py does not drop the
        # rest for this gate), so the batch is demos / successful policy frames as mixed
        streams = success_only(streams)
    sizes = {s: streams.size(s) for s in ("sft", "int", "auto")}
    log_dir = ctx.ckpt_root_of(method) / "tb"
    t1 = time.perf_counter()
    out = run_round(
        cfg,
        streams,
        ctx.ckpt_root_of(method),
        round_index,
        init_from=init_checkpoint(ctx, method, round_index),
        progress=False,
        log_dir=log_dir,
    )
    t_train = time.perf_counter() - t1
    rec = {
        "checkpoint": str(out),
        "steps": steps,
        "convert_s": t_conv,
        "converted": conv.converted,
        # bags the converter refused: they silently leave the replay buffer, so keep count
        "skipped": len(conv.skipped),
        "skip_reasons": sorted(set(conv.skipped.values()))[:5],
        "store_episodes": conv.store_episodes,
        "store_by_source_outcome": conv.store_by_source_outcome,
        "stream_sizes": sizes,
        "train_s": t_train,
        "steps_per_s": steps / max(t_train, 1e-9),
        "metrics": tb_summary(log_dir / cfg.method / f"round_{round_index:03d}", cfg.warmup_steps),
    }
    write_json(ctx.record("train", method, round_index), rec)
    return rec


def tb_summary(log_dir: Path, warmup_steps: int) -> dict[str, float]:
    """Mean of each logged scalar over the round (gate / weight statistics: after warm-up only,
    as the paper's App. G figures are), so the report can compare them with the paper."""
    if not log_dir.is_dir():
        return {}
    # deferred: tensorboard is heavy to import and only a finished round reads its logs
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    out: dict[str, float] = {}
    for tag in acc.Tags().get("scalars", []):
        events = acc.Scalars(tag)
        if not events:
            continue
        start = min(e.step for e in events)
        after = [e.value for e in events if e.step - start >= warmup_steps]
        use = (
            after if tag.startswith(("gate/", "weights/")) and after else [e.value for e in events]
        )
        out[tag] = float(sum(use) / len(use))
        out[tag + "@last"] = float(events[-1].value)
    return out


def run_eval(ctx: SeedContext, method: str, round_index: int) -> dict[str, Any]:
    cfg = EvalConfig(
        trials=ctx.track.eval_trials, obs_mode=ctx.track.obs_mode, sim_config=ctx.sim_config
    )
    result = evaluate_policy(str(ctx.ckpt(method, round_index)), cfg)
    result.write_json(ctx.eval_json(method, round_index))
    return result.summary.to_dict() | {"wall_s": result.wall_s}
