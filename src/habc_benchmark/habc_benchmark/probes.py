"""Probes of a trained critic: what the report needs beyond success rates.

* g_t per source (successful rollout / failed rollout / intervention windows) on the method's
  own replay buffer, compared with the paper's App. G (mean g_t 0.7-0.9 on successful rollouts);
* p_v and normalised V_e along a few rollouts with the operator's authority (paper Fig. 4 right);
* the viability map: p_v at the initial state over initial marker positions (paper Fig. 4 left);
* calibration: p_v(s_0) on the held-out evaluation layouts against the outcomes of the policy
  whose rollouts trained it (AUC, Brier score, mean p_v vs. success rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from habc_benchmark.evaluation import load_sim, rig_policy_factory
from habc_benchmark.seeds import PROBE_BASE
from habc_benchmark.stages import SeedContext, read_json, seed_env, use_one_thread, write_json
from habc_control.authority import Authority
from habc_control.collect import CollectConfig, Collector
from habc_core import features as F

# Deferred to the probe that needs it: torch (habc_trainer's checkpoint, models, store_streams,
# update) and mujoco (habc_sim.env, habc_sim.model).

G_BINS = np.linspace(0.0, 2.0, 41)  # g_t in (0, 2)
GATE_SAMPLES = 2048  # windows per stream for the histograms


@dataclass
class LoadedCritic:
    critic: Any  # DualHeadCritic
    model_cfg: Any
    stats: Any
    train_cfg: Any
    t_max: float

    def heads(self, batch: dict[str, Any], prefix: str) -> tuple[np.ndarray, np.ndarray]:
        """(p_v, V_e) for the observations under `prefix` of a batch."""
        import torch  # deferred: torch

        from habc_trainer.models.inputs import prepare_obs

        with torch.no_grad():
            z, v = self.critic(prepare_obs(batch, prefix, self.model_cfg, self.stats))
        return torch.sigmoid(z).numpy(), v.numpy()


def load_critic(path: Path | str) -> LoadedCritic:
    # deferred: torch
    from habc_trainer.checkpoint import load_checkpoint
    from habc_trainer.models.critic import DualHeadCritic

    ckpt = load_checkpoint(path)
    critic = DualHeadCritic(ckpt.model_config, ckpt.train_config.t_max)
    sd = {k[len("critic.") :]: v for k, v in ckpt.model.items() if k.startswith("critic.")}
    critic.load_state_dict(sd)
    critic.eval()
    return LoadedCritic(
        critic, ckpt.model_config, ckpt.stats, ckpt.train_config, float(ckpt.train_config.t_max)
    )


def obs_batch(observations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Single-frame env observations -> an `obs.`-prefixed batch."""
    batch: dict[str, Any] = {F.TASK: [o[F.TASK] for o in observations]}
    for key in observations[0]:
        if key != F.TASK:
            batch[F.OBS_PREFIX + key] = np.stack([np.asarray(o[key]) for o in observations])
    return batch


# --- g_t per source ---
def gate_histograms(
    critic: LoadedCritic, store: Path, round_index: int, rng: np.random.Generator
) -> dict[str, Any]:
    """g_t (Eq. 7, or 1 + tanh(A_v) for habc_v) from the checkpoint's critic on windows of the
    replay buffer it trained on, split by source."""
    import torch  # deferred: torch, as the habc_trainer modules below

    from habc_trainer.models.inputs import as_tensor, prepare_obs
    from habc_trainer.store_streams import open_streams
    from habc_trainer.update import (
        INTERVENTION,
        ROLLOUT_FAIL,
        ROLLOUT_SUCC,
        critic_gate,
        sample_kinds,
    )

    cfg = critic.train_cfg
    streams = open_streams(store, round_index, cfg)
    out: dict[str, Any] = {"bins": G_BINS.tolist()}
    names = {
        ROLLOUT_SUCC: "rollout_success",
        ROLLOUT_FAIL: "rollout_failure",
        INTERVENTION: "intervention",
    }
    groups: dict[str, list[np.ndarray]] = {n: [] for n in names.values()}
    for stream in ("auto", "int"):
        if streams.size(stream) == 0:
            continue
        batch = streams.sample(stream, GATE_SAMPLES, rng)
        obs = prepare_obs(batch, F.OBS_PREFIX, critic.model_cfg, critic.stats)
        nobs = prepare_obs(batch, F.NEXT_OBS_PREFIX, critic.model_cfg, critic.stats)
        both = {k: torch.cat([obs[k], nobs[k]]) for k in obs}
        term = as_tensor(batch[F.TERMINAL_SUCCESS]).bool()
        g, _ = critic_gate(critic.critic, both, term, cfg.method_config())
        kinds = sample_kinds(batch)
        for kind, name in names.items():
            sel = (kinds == kind).numpy()
            if sel.any():
                groups[name].append(g.numpy()[sel])
    for name, parts in groups.items():
        if not parts:
            continue
        g = np.concatenate(parts)
        out[name] = {
            "n": int(g.size),
            "mean": float(g.mean()),
            "std": float(g.std()),
            "counts": np.histogram(g, G_BINS)[0].tolist(),
        }
    return out


# --- traces along rollouts ---
class RecordingSink:
    """An EpisodeSink that keeps each tick's observation and who drove each arm."""

    def __init__(self) -> None:
        self.observations: list[dict[str, Any]] = []
        self.human: list[bool] = []
        self._tick_human = False
        self._arms_seen = 0

    def begin(self, meta: Any) -> None:
        self.observations, self.human = [], []

    def observation(self, env: Any, obs: dict[str, Any], t_ns: int) -> None:
        self.observations.append(dict(obs))
        self._tick_human, self._arms_seen = False, 0

    def command_request(self, arm: str, out: Any, mode: int, t_ns: int) -> None:
        pass

    def command(self, arm: str, executed: Any, t_ns: int) -> None:
        self._tick_human |= int(executed.command.authority) == int(Authority.HUMAN)
        self._arms_seen += 1
        if self._arms_seen == 2:  # both arms commanded: the tick is complete
            self.human.append(self._tick_human)

    def authority(self, snapshot: Any, t_ns: int, source: str) -> None:
        pass

    def chunk(self, *args: Any, **kwargs: Any) -> None:
        pass

    def end(self, meta: Any, extra: dict[str, Any]) -> str | None:
        return None


def traces(ctx: SeedContext, critic: LoadedCritic, policy: Path) -> list[dict[str, Any]]:
    """p_v and 1 + V_e / T_max (1 = success now, 0 = T_max steps away) along rollouts of
    `policy` with the simulated operator, on probe seeds (never trained on).

    Runs up to seeds.PROBE_TRIES x probe_episodes rollouts and keeps probe_episodes of them,
    those with an operator takeover first (the authority shading is the point of the figure)."""
    want = ctx.plan.probe_episodes
    seeds = ctx.plan.probe_seeds()
    if want == 0:
        return []
    env = seed_env(ctx)
    cfg = CollectConfig(mode="rollout", episodes=len(seeds), seed=seeds.start, round=0)
    sink = RecordingSink()
    factory = rig_policy_factory(str(policy), env, cfg.horizon, cfg.execute_steps)
    collector = Collector(env, cfg, sink, factory)
    out: list[dict[str, Any]] = []
    try:
        for seed in seeds:
            r = collector.run_episode(seed)
            p_v, v_e = critic.heads(obs_batch(sink.observations), "obs.")
            out.append(
                {
                    "seed": seed,
                    "outcome": r.outcome,
                    "length": int(r.ticks),
                    "intervened": bool(r.intervened),
                    "p_v": p_v.round(4).tolist(),
                    "v_e_norm": (1.0 + v_e / critic.t_max).round(4).tolist(),
                    "human": [bool(h) for h in sink.human[: len(p_v)]],
                }
            )
            if sum(t["intervened"] for t in out) >= want:
                break
    finally:
        env.close()
    # takeovers first (successes before failures), then autonomous episodes, seed order kept
    out.sort(key=lambda t: (not t["intervened"], t["outcome"] != "success", t["seed"]))
    return out[:want]


# --- initial states ---
def initial_obs(env: Any, seed: int, marker_xy: Sequence[float] | None = None) -> dict[str, Any]:
    """The first observation of episode `seed`, optionally with the marker moved to
    `marker_xy` (everything else of that seed's layout kept), settled as reset() settles it."""
    obs = env.reset(seed)
    if marker_xy is None:
        return obs
    from habc_sim.model import ARMS  # deferred: mujoco

    lay = env.layout
    env.rig.reset(
        {arm: env.q_home for arm in ARMS},
        np.asarray(marker_xy, dtype=float),
        lay.marker_yaw,
        lay.pouch_pos,
        lay.pouch_yaw,
    )
    for _ in range(3):
        env.rig.step()
    return env.observe()


def viability_map(ctx: SeedContext, critic: LoadedCritic, grid: int) -> dict[str, Any]:
    """p_v(s_0) over the marker's randomisation range (pouch layout of the first probe seed)."""
    from habc_sim.env import PouchEnv  # deferred: mujoco

    sim = load_sim(ctx.sim_config)
    env = PouchEnv(sim, obs_mode=ctx.track.obs_mode)
    xs = np.linspace(*sim.task.marker_x, grid)
    ys = np.linspace(*sim.task.marker_y, grid)
    try:
        obs = [initial_obs(env, PROBE_BASE, (x, y)) for y in ys for x in xs]
    finally:
        env.close()
    p_v, _ = critic.heads(obs_batch(obs), "obs.")
    return {"x": xs.tolist(), "y": ys.tolist(), "p_v": p_v.reshape(grid, grid).tolist()}


def calibration(
    ctx: SeedContext, critic: LoadedCritic, policy_eval: dict[str, Any] | None
) -> dict[str, Any]:
    """p_v(s_0) on the held-out layouts vs. the evaluation outcomes of the policy that
    generated the critic's training rollouts (same seeds, so per-layout comparison)."""
    seeds = ctx.plan.eval_seeds()
    env = seed_env(ctx)
    try:
        obs = [initial_obs(env, s) for s in seeds]
    finally:
        env.close()
    p_v, _ = critic.heads(obs_batch(obs), "obs.")
    out: dict[str, Any] = {"p_v_s0_mean": float(p_v.mean()), "p_v_s0_std": float(p_v.std())}
    if policy_eval is not None:
        y = np.array([t["success"] for t in policy_eval["trials"]], dtype=float)
        out["policy_success"] = float(y.mean())
        out["brier"] = float(np.mean((p_v[: len(y)] - y) ** 2))
        out["auc"] = auc(p_v[: len(y)], y)
    return out


def auc(score: np.ndarray, label: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None if one class is absent."""
    pos, neg = score[label == 1], score[label == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def probe_seed(ctx: SeedContext) -> dict[str, Any]:
    """All probes of one protocol seed (state track; pixel critics would need rendering)."""
    rng = np.random.default_rng([ctx.protocol_seed, 17])
    t = ctx.track
    out: dict[str, Any] = {"gate": {}, "calibration": {}}
    finals = {m: t.step1_rounds for m in t.methods}
    if t.step2_rounds:
        finals.update({m: t.step1_rounds + t.step2_rounds for m in t.step2_methods})
    for method, r in finals.items():
        ck = ctx.ckpt(method, r)
        if not ck.is_dir():
            continue
        critic = load_critic(ck)
        if not critic.train_cfg.method_config().train_critic:
            continue
        out["gate"][f"{method}/r{r:03d}"] = gate_histograms(critic, ctx.store_dir(method), r, rng)
    for r in range(1, t.step1_rounds + 1):
        ck = ctx.ckpt("habc", r)
        if ck.is_dir():
            prev = ("sft", 0) if r == 1 else ("habc", r - 1)
            out["calibration"][f"habc/r{r:03d}"] = calibration(
                ctx, load_critic(ck), read_json(ctx.eval_json(*prev))
            )
    final = ctx.ckpt("habc", t.step1_rounds)
    if final.is_dir():
        critic = load_critic(final)
        out["viability_map"] = viability_map(ctx, critic, ctx.viability_grid) | {
            "checkpoint": f"habc/r{t.step1_rounds:03d}"
        }
        out["traces"] = traces(ctx, critic, final)
        out["traces_checkpoint"] = f"habc/r{t.step1_rounds:03d}"
    return out


def run_probes(ctx: SeedContext) -> dict[str, Any]:
    """The probes stage (plan.execute): every probe of one seed, written to probes.json."""
    use_one_thread()
    out = probe_seed(ctx)
    write_json(ctx.probes_json, out)
    return {"probes": sorted(out)}
