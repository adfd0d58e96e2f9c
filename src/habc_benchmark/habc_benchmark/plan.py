"""The protocol as a task graph: one task per stage of each (track, protocol seed).

Per seed: demos -> SFT (round 0) -> for each step-1 method, rounds 1..R: rollouts by the
method's own previous checkpoint -> a training round -> evaluation. Step 2 continues from habc's
round R for each step-2 method (habc itself, and habc_ir). Probes of the critic run last.
A diagnosed seed adds the diagnostic's arms and its analysis (diagnose.py).
A task is finished when its record is on disk, so a rerun skips it (resume).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from habc_benchmark import diagnose, probes, stages
from habc_benchmark.config import ExperimentConfig
from habc_benchmark.stages import (
    DIAGNOSE_ROLLOUTS_OF,
    FRESH_DEMOS,
    SFT,
    SFT_CONTINUED,
    SeedContext,
    init_checkpoint,
    is_step2_start,
)

KINDS: tuple[str, ...] = ("demos", "train", "rollouts", "eval", "probes", "diagnose")


@dataclass(frozen=True)
class Task:
    key: str
    kind: str
    ctx: SeedContext
    method: str = SFT
    round_index: int = 0
    deps: tuple[str, ...] = ()
    priority: tuple[int, ...] = field(default=(), compare=False)

    def finished(self) -> bool:
        c = self.ctx
        if self.kind == "demos":  # method SFT: the protocol's demos; FRESH_DEMOS: the fresh
            return c.record("demos", self.method).is_file()
        if self.kind == "rollouts":
            return c.record("rollouts", self.method, self.round_index).is_file()
        if self.kind == "train":
            return (
                c.record("train", self.method, self.round_index).is_file()
                and c.ckpt(self.method, self.round_index).is_dir()
            )
        if self.kind == "eval":
            return c.eval_json(self.method, self.round_index).is_file()
        if self.kind == "diagnose":
            return c.diagnose_json.is_file()
        return c.probes_json.is_file()

    def describe(self) -> str:
        if self.kind == "demos" and self.method != SFT:
            return f"{self.ctx.track_name} seed {self.ctx.protocol_seed}: demos {self.method}"
        if self.kind in ("demos", "probes", "diagnose"):
            return f"{self.ctx.track_name} seed {self.ctx.protocol_seed}: {self.kind}"
        return (
            f"{self.ctx.track_name} seed {self.ctx.protocol_seed}: {self.kind} "
            f"{self.method} round {self.round_index}"
        )


def execute(task: Task) -> dict[str, Any]:
    """Run one task (in a worker process)."""
    c = task.ctx
    if task.kind == "demos":
        return stages.run_demos(c) if task.method == SFT else stages.run_fresh_demos(c)
    if task.kind == "rollouts":
        policy = init_checkpoint(c, task.method, task.round_index)
        assert policy is not None  # rounds >= 1 always start from a checkpoint
        return stages.run_rollouts(c, task.method, task.round_index, policy)
    if task.kind == "train":
        return stages.run_train(c, task.method, task.round_index)
    if task.kind == "eval":
        return stages.run_eval(c, task.method, task.round_index)
    if task.kind == "probes":
        return probes.run_probes(c)
    if task.kind == "diagnose":
        return diagnose.run_diagnose(c)
    raise ValueError(f"task kind: {task.kind!r} is not one of {list(KINDS)}")


def seed_context(
    cfg: ExperimentConfig, track_name: str, seed: int, out: Path, root: Path
) -> SeedContext:
    track = cfg.tracks()[track_name]
    return SeedContext(
        track_name=track_name,
        track=track,
        protocol_seed=seed,
        root=(out / track_name / f"seed_{seed}").resolve(),
        sim_config=str((root / cfg.sim_config).resolve()),
        train_config=str((root / cfg.train_config).resolve()),
        probe_episodes=cfg.probe_episodes,
        viability_grid=cfg.viability_grid,
        diagnose=cfg.diagnosed(track_name, seed),
        diagnose_windows=cfg.diagnose_windows,
    )


def chains(ctx: SeedContext) -> list[tuple[str, int]]:
    """Every (method, round) checkpoint of one seed, SFT first."""
    t = ctx.track
    cells = [(SFT, 0)]
    cells += [(m, r) for r in range(1, t.step1_rounds + 1) for m in (*t.methods, *t.ablations)]
    if t.sft_continued_control:
        cells += [(SFT_CONTINUED, r) for r in range(1, t.step1_rounds + 1)]
    if t.step2_rounds:
        last = t.step1_rounds + t.step2_rounds
        cells += [(m, r) for r in range(t.step1_rounds + 1, last + 1) for m in t.step2_methods]
    return cells


def build_tasks(
    cfg: ExperimentConfig, out: Path, root: Path, tracks: tuple[str, ...] | None = None
) -> list[Task]:
    """All tasks in a valid order (dependencies first), each with a scheduling priority:
    earlier tracks and seeds first, so seed 0 of the state grid finishes before seed 1 starts
    to compete for the cores."""
    tasks: list[Task] = []
    names = tracks or tuple(cfg.tracks())
    for ti, track_name in enumerate(names):
        for si, seed in enumerate(cfg.seeds_of(track_name)):
            ctx = seed_context(cfg, track_name, seed, out, root)
            pre = f"{track_name}/s{seed}"

            def key(kind: str, method: str = SFT, r: int = 0, pre: str = pre) -> str:
                return f"{pre}/{kind}/{method}/r{r:03d}"

            tasks.append(Task(key("demos"), "demos", ctx, priority=(ti, si, 0, 0)))
            tasks.append(
                Task(key("train"), "train", ctx, deps=(key("demos"),), priority=(ti, si, 0, 1))
            )
            evals = []
            for method, r in chains(ctx):
                steps: list[tuple[str, tuple[str, ...]]] = []
                if method == SFT_CONTINUED:  # no rollouts: it trains on the demos alone
                    prev = key("train", SFT) if r == 1 else key("train", method, r - 1)
                    steps.append(("train", (prev,)))
                elif method != SFT:
                    if r == 1:
                        init_key = key("train", SFT)
                    elif is_step2_start(ctx, method, r):
                        init_key = key("train", "habc", r - 1)
                    else:
                        init_key = key("train", method, r - 1)
                    extra: tuple[str, ...] = ()
                    if is_step2_start(ctx, method, r):
                        # a step-2 arm trains on habc's step-1 rollouts as well
                        extra = tuple(
                            key("rollouts", "habc", q)
                            for q in range(1, ctx.track.step1_rounds + 1)
                        )
                    steps.append(("rollouts", (init_key,)))
                    steps.append(("train", (key("rollouts", method, r), *extra)))
                steps.append(("eval", (key("train", method, r),)))
                tasks += _cell_tasks(ctx, key, method, r, steps, (ti, si, r))
                evals.append(key("eval", method, r))
            tasks.append(
                Task(key("probes"), "probes", ctx, deps=tuple(evals), priority=(ti, si, 99, 0))
            )
            if ctx.diagnose:
                tasks += _diagnose_tasks(ctx, key, (ti, si))
    return tasks


STAGE_ORDER = {"rollouts": 0, "train": 1, "eval": 2}  # within a round: collect, train, evaluate


def _cell_tasks(
    ctx: SeedContext,
    key: Any,
    method: str,
    r: int,
    steps: list[tuple[str, tuple[str, ...]]],
    prio: tuple[int, ...],
) -> list[Task]:
    """One cell's tasks, each (kind, deps) of `steps`; priority: `prio`, then the stage."""
    return [
        Task(key(kind, method, r), kind, ctx, method, r, deps, priority=(*prio, STAGE_ORDER[kind]))
        for kind, deps in steps
    ]


def _diagnose_tasks(ctx: SeedContext, key: Any, prio: tuple[int, int]) -> list[Task]:
    """The diagnostic's arms that are not cells of the grid, and its analysis, which waits for
    every arm's evaluation (so `--diagnose` pulls them all in)."""
    out = [Task(key("demos", FRESH_DEMOS), "demos", ctx, FRESH_DEMOS, priority=(*prio, 0, 0))]
    deps = {
        FRESH_DEMOS: (key("demos", FRESH_DEMOS), key("train")),
        diagnose.FILTERED_BC: (key("rollouts", DIAGNOSE_ROLLOUTS_OF, 1),),
        SFT_CONTINUED: (key("train"),),
    }
    for cell in diagnose.cells(ctx):
        if diagnose.trains_itself(ctx, cell):
            steps = [("train", deps[cell]), ("eval", (key("train", cell, 1),))]
            out += _cell_tasks(ctx, key, cell, 1, steps, (*prio, 1))
    evals = tuple(key("eval", cell, 1) for cell in diagnose.cells(ctx))
    out.append(
        Task(
            key("diagnose"),
            "diagnose",
            ctx,
            deps=(
                key("demos", FRESH_DEMOS),
                key("rollouts", DIAGNOSE_ROLLOUTS_OF, 1),
                key("eval"),
                *evals,
            ),
            priority=(*prio, 1, 3),
        )
    )
    return out


def with_dependencies(tasks: list[Task], roots: list[Task]) -> list[Task]:
    """`roots` and everything they depend on, in the order of `tasks` (dependencies first)."""
    by_key = {t.key: t for t in tasks}
    need: set[str] = set()
    stack = [t.key for t in roots]
    while stack:
        k = stack.pop()
        if k not in need:
            need.add(k)
            stack.extend(by_key[k].deps)
    return [t for t in tasks if t.key in need]
