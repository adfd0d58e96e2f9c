"""Episode seeds: disjoint ranges for demos, rollouts, probes and held-out evaluation.

An episode seed fixes the sim layout, the operator's draws and the physics (sim-rig.md), so a
seed used for training must never be an evaluation seed. Each purpose owns one range:

| purpose | range | per protocol seed `s` |
| --- | --- | --- |
| demos | [0, 1e6) | s * 1e5 + i; the diagnostic's fresh demos follow: s * 1e5 + demos + j |
| rollouts | [1e6, 5e6) | 1e6 + s * 1e5 + round * 1e3 + i (same for every method in a round) |
| probes | [8e6, 9e6) | 8e6 + i (traces of the critic, never trained on) |
| evaluation | [9e6, 1e7) | 9e6 + i (one held-out set for every checkpoint and protocol seed) |

Sharing rollout seeds across methods within a round and one evaluation set across checkpoints
are common random numbers: differences between methods are not layout luck.
"""

from __future__ import annotations

from dataclasses import dataclass

DEMO_BASE = 0
ROLLOUT_BASE = 1_000_000
PROBE_BASE = 8_000_000
EVAL_BASE = 9_000_000
RANGE_END = 10_000_000
SEED_STRIDE = 100_000  # per protocol seed
ROUND_STRIDE = 1_000  # per round, within a protocol seed's rollout block
MAX_PROTOCOL_SEEDS = 10  # 10 * SEED_STRIDE fits each 1e6-wide block
PROBE_TRIES = 4  # probe rollouts per trace kept (to find some with an operator takeover)

PURPOSES: tuple[str, ...] = ("demo", "rollout", "probe", "eval")
_RANGES: dict[str, tuple[int, int]] = {
    "demo": (DEMO_BASE, ROLLOUT_BASE),
    "rollout": (ROLLOUT_BASE, 5_000_000),
    "probe": (PROBE_BASE, EVAL_BASE),
    "eval": (EVAL_BASE, RANGE_END),
}


class SeedOverlapError(ValueError):
    """Two purposes would share an episode seed (e.g. a training seed inside the held-out set)."""


def purpose_of(seed: int) -> str:
    """Which range an episode seed belongs to ("none" outside every range)."""
    for name, (lo, hi) in _RANGES.items():
        if lo <= seed < hi:
            return name
    return "none"


@dataclass(frozen=True)
class SeedPlan:
    """Episode seeds of one protocol seed (`protocol_seed`) of the experiment."""

    protocol_seed: int
    demos: int
    rollouts_per_round: int
    rounds: int  # highest round index that collects rollouts
    eval_trials: int
    probe_episodes: int = 0
    fresh_demos: int = 0  # extra expert demos of the diagnostic's fresh_demos arm

    def __post_init__(self) -> None:
        if not 0 <= self.protocol_seed < MAX_PROTOCOL_SEEDS:
            raise ValueError(
                f"protocol_seed: must be in [0, {MAX_PROTOCOL_SEEDS}), got {self.protocol_seed!r}"
            )
        if not 0 < self.demos <= SEED_STRIDE:
            raise ValueError(f"demos: must be in (0, {SEED_STRIDE}], got {self.demos!r}")
        if not 0 <= self.fresh_demos <= SEED_STRIDE - self.demos:
            raise ValueError(
                f"fresh_demos: must be in [0, {SEED_STRIDE - self.demos}] next to "
                f"{self.demos} demos, got {self.fresh_demos!r}"
            )
        if not 0 <= self.rollouts_per_round <= ROUND_STRIDE:
            raise ValueError(
                f"rollouts_per_round: must be in [0, {ROUND_STRIDE}], "
                f"got {self.rollouts_per_round!r}"
            )
        if not 0 <= self.rounds < SEED_STRIDE // ROUND_STRIDE:
            raise ValueError(
                f"rounds: must be in [0, {SEED_STRIDE // ROUND_STRIDE}), got {self.rounds!r}"
            )
        if not 0 < self.eval_trials <= RANGE_END - EVAL_BASE:
            raise ValueError(f"eval_trials: must be > 0, got {self.eval_trials!r}")
        if not 0 <= self.probe_episodes * PROBE_TRIES <= EVAL_BASE - PROBE_BASE:
            raise ValueError(f"probe_episodes: must be >= 0, got {self.probe_episodes!r}")

    def demo_seeds(self) -> range:
        start = DEMO_BASE + self.protocol_seed * SEED_STRIDE
        return range(start, start + self.demos)

    def fresh_demo_seeds(self) -> range:
        """The diagnostic's fresh expert demos: the demo block's seeds right after the demos."""
        start = self.demo_seeds().stop
        return range(start, start + self.fresh_demos)

    def rollout_seeds(self, round_index: int) -> range:
        if not 1 <= round_index <= self.rounds:
            raise ValueError(
                f"round_index: rollouts exist for rounds 1..{self.rounds}, got {round_index!r}"
            )
        start = ROLLOUT_BASE + self.protocol_seed * SEED_STRIDE + round_index * ROUND_STRIDE
        return range(start, start + self.rollouts_per_round)

    def probe_seeds(self) -> range:
        """Seeds the critic probes may roll out: PROBE_TRIES per trace kept."""
        return range(PROBE_BASE, PROBE_BASE + PROBE_TRIES * self.probe_episodes)

    def eval_seeds(self) -> range:
        return range(EVAL_BASE, EVAL_BASE + self.eval_trials)

    def training_seeds(self) -> set[int]:
        out = set(self.demo_seeds()) | set(self.fresh_demo_seeds())
        for r in range(1, self.rounds + 1):
            out.update(self.rollout_seeds(r))
        return out

    def check_disjoint(self) -> None:
        """Raise SeedOverlapError unless every seed lies in its own purpose's range."""
        demos, fresh = set(self.demo_seeds()), set(self.fresh_demo_seeds())
        if demos & fresh:
            raise SeedOverlapError(f"fresh demos reuse demo seeds {sorted(demos & fresh)[:5]}")
        groups = {
            "demo": demos | fresh,
            "probe": set(self.probe_seeds()),
            "eval": set(self.eval_seeds()),
        }
        rollouts: set[int] = set()
        for r in range(1, self.rounds + 1):
            seeds = set(self.rollout_seeds(r))
            if seeds & rollouts:
                raise SeedOverlapError(f"round {r} reuses rollout seeds of an earlier round")
            rollouts |= seeds
        groups["rollout"] = rollouts
        for name, seeds in groups.items():
            wrong = sorted(s for s in seeds if purpose_of(s) != name)
            if wrong:
                raise SeedOverlapError(f"{name} seeds outside the {name} range: {wrong[:5]}")
        names = list(groups)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                both = groups[a] & groups[b]
                if both:
                    raise SeedOverlapError(f"{a} and {b} share seeds {sorted(both)[:5]}")


def check_plans_disjoint(plans: list[SeedPlan]) -> None:
    """Every plan is disjoint in itself, and no protocol seed trains on another's seeds."""
    seen: dict[int, int] = {}
    for plan in plans:
        plan.check_disjoint()
        for s in plan.training_seeds():
            other = seen.setdefault(s, plan.protocol_seed)
            if other != plan.protocol_seed:
                raise SeedOverlapError(
                    f"episode seed {s} trains both protocol seed {other} and {plan.protocol_seed}"
                )


def check_eval_seeds(first: int, n: int) -> None:
    """Evaluation trials must all be held-out seeds (raise SeedOverlapError otherwise)."""
    if n > 0 and not (EVAL_BASE <= first and first + n <= RANGE_END):
        raise SeedOverlapError(
            f"evaluation seeds [{first}, {first + n}) leave the held-out range "
            f"[{EVAL_BASE}, {RANGE_END}): they could be demo or rollout seeds"
        )
