"""One HABC update (Algorithm 1), shared by every method; the method only changes the weights.

Order per step: parent value head V_psi (Eq. 9) -> dual-head critic (Eq. 4) -> gate from the
updated, detached heads (Eq. 5-7) -> pre-normalisation weights by source -> unit-mean (Eq. 8) ->
weighted flow-matching actor loss (Eq. 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as nnf

from habc_core import features as F
from habc_trainer import weights as W
from habc_trainer.config import TrainConfig
from habc_trainer.methods import MethodConfig
from habc_trainer.models.batch import TrainBatch
from habc_trainer.models.config import ModelConfig
from habc_trainer.models.critic import DualHeadCritic, ParentValueHead
from habc_trainer.models.inputs import as_tensor
from habc_trainer.models.policy import FlowPolicy, make_policy
from habc_trainer.normalize import NormStats

# Sample kinds (pre-normalisation weight table, spec §4).
DEMO, INTERVENTION, ROLLOUT_SUCC, ROLLOUT_FAIL, ROLLOUT_UNLABELED = range(5)


@dataclass
class Learner:
    """The trained networks, their optimisers and the step counters."""

    policy: FlowPolicy  # or a LeRobotPolicy: the same loss / infer / model / cfg / stats
    critic: DualHeadCritic
    value: ParentValueHead
    opt_actor: torch.optim.Optimizer
    opt_critic: torch.optim.Optimizer
    opt_value: torch.optim.Optimizer
    model_index: int = 0  # total actor gradient steps ever taken (stamped on rollouts)
    # Under torchrun: torch's DistributedDataParallel around each trained network (the actor
    # through its loss), used for the forward passes whose gradients are stepped; DDP averages
    # the gradients across ranks during backward. Empty in a single process.
    sync: dict[str, torch.nn.Module] = field(default_factory=dict)

    def trainable(self, name: str) -> torch.nn.Module:
        """The module whose forward feeds a gradient step: DDP-wrapped when distributed."""
        if name in self.sync:
            return self.sync[name]
        return ActorLoss(self.policy) if name == "actor" else self.modules()[name]

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.policy.model, "critic": self.critic, "value": self.value}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.opt_actor, "critic": self.opt_critic, "value": self.opt_value}


class ActorLoss(torch.nn.Module):
    """The actor's per-sample loss as a forward pass: what DDP wraps (its gradient hooks
    follow forward calls, and the actor trains through ``loss``, not ``forward``)."""

    def __init__(self, policy: torch.nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: TrainBatch, generator: torch.Generator) -> torch.Tensor:
        return self.policy.loss(batch, generator)


def _data_parallel(learner: Learner) -> None:
    """Wrap the trained networks in DDP when torch.distributed runs with more than one rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    from torch.nn.parallel import DistributedDataParallel as DDP

    device = next(learner.critic.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    modules = {
        "actor": ActorLoss(learner.policy),
        "critic": learner.critic,
        "value": learner.value,
    }
    # find_unused_parameters: an actor step may leave a head unused (e.g. no sample kept).
    learner.sync = {
        name: DDP(m, device_ids=ids, find_unused_parameters=True) for name, m in modules.items()
    }


def build_learner(cfg: TrainConfig, model_cfg: ModelConfig, stats: NormStats) -> Learner:
    """Fresh networks (initialised from cfg.seed) and AdamW optimisers (device from cfg)."""
    # Seeded init without touching the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        policy = make_policy(model_cfg, stats).to(cfg.device)
        critic = DualHeadCritic(model_cfg, cfg.t_max).to(cfg.device)
        value = ParentValueHead(model_cfg, *cfg.value_range).to(cfg.device)

    def adamw(module: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        # foreach: one fused kernel per op instead of a Python loop over parameters (CPU too).
        return torch.optim.AdamW(
            module.parameters(), lr=lr, weight_decay=cfg.weight_decay, foreach=True
        )

    learner = Learner(
        policy,
        critic,
        value,
        adamw(policy, cfg.lr_actor),
        adamw(critic, cfg.lr_critic),
        adamw(value, cfg.lr_value),
    )
    _data_parallel(learner)
    return learner


@dataclass(frozen=True)
class StepContext:
    """What the update needs to know about where it is in training."""

    step_in_round: int
    round_index: int
    recap_epsilon: float = 0.0


def as_train_batch(
    learner: Learner, batch: TrainBatch | Mapping[str, Any], cfg: TrainConfig
) -> TrainBatch:
    """The batch as the update consumes it; a dict batch is converted (once) here."""
    if isinstance(batch, TrainBatch):
        return batch
    return TrainBatch.build(batch, learner.policy.cfg, learner.policy.stats, cfg.device)


def sample_kinds(batch: TrainBatch | Mapping[str, Any]) -> torch.Tensor:
    """(B,) int64 kind per sample: DEMO, INTERVENTION, ROLLOUT_SUCC/FAIL/UNLABELED."""
    if isinstance(batch, TrainBatch):
        src, is_int, label = batch.source, batch.intervention_window, batch.outcome_label
    else:  # a dict batch (the benchmark's probes): only the three label fields are read
        src = as_tensor(batch[F.SOURCE])
        is_int = as_tensor(batch[F.INTERVENTION_WINDOW]).bool()
        label = as_tensor(batch[F.OUTCOME_LABEL]).float()
    kinds = torch.full_like(src, ROLLOUT_UNLABELED)
    kinds[label == 1.0] = ROLLOUT_SUCC
    kinds[label == 0.0] = ROLLOUT_FAIL
    kinds[is_int] = INTERVENTION
    kinds[src == F.SOURCE_DEMO] = DEMO
    return kinds


def stale_rollouts(
    batch: TrainBatch, kinds: torch.Tensor, model_index: int, cutoff: int
) -> torch.Tensor:
    """(B,) bool: policy samples from an actor more than ``cutoff`` steps old (spec §8)."""
    return (kinds >= ROLLOUT_SUCC) & (batch.model_index < model_index - cutoff)


def pre_weights(
    kinds: torch.Tensor,
    g: torch.Tensor,
    method: MethodConfig,
    ir_on: bool,
    recap_pass: torch.Tensor | None,
    success_keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """The table of spec §4 / §7: w_tilde (B,) from kinds (B,) and gate values g (B,).

    success_keep (B,): the filtered-BC gate (weights.success_filter), for gate "success"."""
    w = torch.ones_like(g)
    roll = kinds >= ROLLOUT_SUCC
    if method.gate in ("habc", "viability"):
        w = torch.where(kinds == ROLLOUT_SUCC, g, w)
        w = torch.where(
            (kinds == ROLLOUT_FAIL) | (kinds == ROLLOUT_UNLABELED), torch.zeros_like(w), w
        )
        if ir_on:
            w = torch.where(kinds == INTERVENTION, g, w)
    elif method.gate == "recap":
        assert recap_pass is not None
        w = torch.where(roll, recap_pass, w)
    elif method.gate == "success":
        assert success_keep is not None
        w = torch.where(kinds != DEMO, success_keep, w)
    return w


def _step(
    opt: torch.optim.Optimizer, loss: torch.Tensor, module: torch.nn.Module, clip: float, lr: float
) -> float:
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()  # under torchrun, DDP has averaged the gradients across ranks by now
    norm = torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
    opt.step()
    return float(norm)


def lr_scale(step_in_round: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps of each round, then constant."""
    return 1.0 if warmup == 0 else min(1.0, (step_in_round + 1) / warmup)


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (x * m).sum() / m.sum().clamp_min(1)


@torch.no_grad()
def critic_gate(
    critic: DualHeadCritic, both: dict[str, torch.Tensor], done: torch.Tensor, method: MethodConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """g_t (B,) from detached heads on stacked [s_t; s_t+1] inputs (2B rows), and z_v(s_t) (B,).

    HABC uses Eq. 7 (with the TD terminal at d_t = 1); HABC-V ablates V_e: 1 + tanh(A_v).
    """
    n = done.shape[0]
    z, v = critic(both)
    z_t, z_n = z.split(n)
    v_t, v_n = v.split(n)
    if method.gate == "viability":
        return W.gate_viability(z_t, z_n), z_t
    return W.gate(z_t, z_n, v_t, v_n, done=done), z_t


def unnormalised_weights(
    batch: TrainBatch,
    kinds: torch.Tensor,
    g: torch.Tensor,
    method: MethodConfig,
    cfg: TrainConfig,
    round_index: int,
    model_index: int,
    recap_pass: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """w_tilde (B,) by the spec §4 table and sample validity (B,) bool: a sample with no
    supervised action element, or a stale rollout, is invalid."""
    ir_on = method.intervention_reweighting and round_index >= cfg.ir_start_round
    valid = batch.action_mask.any(dim=(1, 2)) & ~stale_rollouts(
        batch, kinds, model_index, cfg.stale_cutoff
    )
    success_keep = None
    if method.gate == "success":
        success_keep = W.success_filter(batch.outcome_label, batch.intervention_window)
    return pre_weights(kinds, g, method, ir_on, recap_pass, success_keep), valid


def normalised_weights(
    w_tilde: torch.Tensor,
    valid: torch.Tensor,
    kinds: torch.Tensor,
    method: MethodConfig,
    cfg: TrainConfig,
) -> torch.Tensor:
    """Final weights (Eq. 8): SFT samples weigh 1 (0 when invalid) and are never normalised;
    non-SFT ones are unit-mean normalised over the valid ones when the method asks for it."""
    non_sft = kinds != DEMO
    if method.normalize:
        w_non_sft = W.unit_mean(w_tilde, valid & non_sft, cfg.weight_eps)
    else:
        w_non_sft = w_tilde * valid
    return torch.where(non_sft, w_non_sft, valid.float())


def actor_weights(
    batch: TrainBatch,
    kinds: torch.Tensor,
    g: torch.Tensor,
    method: MethodConfig,
    cfg: TrainConfig,
    round_index: int,
    model_index: int,
    recap_pass: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final actor weights w (B,) and sample validity (B,) bool of one batch."""
    w_tilde, valid = unnormalised_weights(
        batch, kinds, g, method, cfg, round_index, model_index, recap_pass
    )
    return normalised_weights(w_tilde, valid, kinds, method, cfg), valid


@torch.no_grad()
def recap_pass_of(
    value: ParentValueHead, batch: TrainBatch, cfg: TrainConfig, epsilon: float
) -> torch.Tensor:
    """Imit-Recap's hard filter (B,) on the parent value head's TD residual."""
    v_t, v_n = value.expected(value(batch.both_obs())).split(len(batch))
    adv = W.recap_advantage(batch.reward, v_t, v_n, batch.episode_done, cfg.gamma)
    return W.recap_filter(adv, epsilon)


@dataclass(frozen=True)
class _Prepared:
    """A step's batch and what every head derives from it (computed once per step)."""

    batch: TrainBatch
    kinds: torch.Tensor
    labeled: torch.Tensor  # (B,) bool: outcome-labeled policy samples (the critic's BCE set)


def _prepare(
    learner: Learner, batch: TrainBatch | Mapping[str, Any], cfg: TrainConfig
) -> _Prepared:
    b = as_train_batch(learner, batch, cfg)
    kinds = sample_kinds(b)
    # Every outcome-labeled rollout sample: in naive mode that includes windows that are
    # also intervention windows (the ablation labels every rollout frame).
    return _Prepared(b, kinds, (kinds != DEMO) & ~b.outcome_label.isnan())


def _value_and_critic_steps(
    learner: Learner,
    p: _Prepared,
    cfg: TrainConfig,
    lr: float,
    method: MethodConfig,
    metrics: dict[str, float],
) -> None:
    """Steps 1-3: V_psi (Eq. 9) and, when the method trains it, the dual-head critic (Eq. 4)."""
    batch, kinds = p.batch, p.kinds
    obs, nobs, done = batch.obs, batch.next_obs, batch.episode_done
    # 1. Parent value head V_psi on B_S ∪ B_O (Eq. 9): TD inside episodes, MC at the boundary.
    vh = learner.value
    logits = learner.trainable("value")(obs)
    with torch.no_grad():  # s_t+1 only feeds the target: no graph (and no backward) for it
        v_next = vh.expected(vh(nobs))
        c = done.float()
        y_v = (1 - c) * (batch.reward + cfg.gamma * v_next) + c * batch.mc_return
    on_v = (kinds != INTERVENTION).float()
    ce = -(vh.two_hot(y_v) * logits.log_softmax(-1)).sum(-1)
    loss_v = _masked_mean(ce, on_v)
    _step(learner.opt_value, loss_v, vh, cfg.grad_clip, cfg.lr_value * lr)
    metrics["loss/value"] = float(loss_v.detach())
    if not method.train_critic:
        return
    # 2-3. Dual-head critic: BCE on labeled policy samples, Huber TD on D_succ (Eq. 3-4).
    label, labeled, term = batch.outcome_label, p.labeled, batch.terminal_success
    eff = batch.efficiency_target
    z, ve = learner.trainable("critic")(obs)
    with torch.no_grad():
        _, ve_next = learner.critic(nobs)
        y_e = torch.where(term, torch.zeros_like(ve_next), -1.0 + ve_next)
        y_e = y_e.clamp(-cfg.t_max, 0.0)
    bce = nnf.binary_cross_entropy_with_logits(z, label.nan_to_num(0.0), reduction="none")
    hub = nnf.huber_loss(ve, y_e, delta=cfg.huber_delta, reduction="none")
    loss_bce, loss_hub = _masked_mean(bce, labeled.float()), _masked_mean(hub, eff.float())
    _step(
        learner.opt_critic, loss_bce + loss_hub, learner.critic, cfg.grad_clip, cfg.lr_critic * lr
    )
    metrics["loss/critic_bce"] = float(loss_bce.detach())
    metrics["loss/critic_huber"] = float(loss_hub.detach())


def critic_pretrain_update(
    learner: Learner, batch: TrainBatch | Mapping[str, Any], cfg: TrainConfig, step: int
) -> dict[str, float]:
    """One step of V_psi and the critic only (the actor untouched, model_index unchanged).

    Run before a round's actor steps so no gate ever comes from a critic that has not seen the
    round's data (TrainConfig.critic_pretrain_steps).
    """
    metrics: dict[str, float] = {}
    lr = lr_scale(step, cfg.lr_warmup_steps)
    _value_and_critic_steps(
        learner, _prepare(learner, batch, cfg), cfg, lr, cfg.method_config(), metrics
    )
    return metrics


@torch.no_grad()
def critic_calibration(
    learner: Learner, batch: TrainBatch | Mapping[str, Any], cfg: TrainConfig, bins: int = 10
) -> dict[str, float]:
    """p_v = sigmoid(z_v) against the outcome labels of a (held-out) rollout batch.

    Returns BCE, the expected calibration error over `bins` equal-width bins of p_v, the mean
    p_v, the labels' success rate and the number of labeled samples (0: nothing to measure).
    """
    p = _prepare(learner, batch, cfg)
    n = int(p.labeled.sum())
    if n == 0:
        return {"samples": 0}
    z, _ = learner.critic(p.batch.obs)
    z, y = z[p.labeled], p.batch.outcome_label[p.labeled]
    prob = torch.sigmoid(z)
    which = (prob * bins).long().clamp(max=bins - 1)
    ece = (
        sum(
            float((prob[which == b].mean() - y[which == b].mean()).abs()) * int((which == b).sum())
            for b in range(bins)
            if (which == b).any()
        )
        / n
    )
    return {
        "samples": n,
        "bce": float(nnf.binary_cross_entropy_with_logits(z, y)),
        "ece": ece,
        "mean_p_v": float(prob.mean()),
        "success_rate": float(y.mean()),
    }


def update(
    learner: Learner,
    batch: TrainBatch | Mapping[str, Any],
    cfg: TrainConfig,
    ctx: StepContext,
    generator: torch.Generator,
) -> dict[str, float]:
    """One gradient step of V_psi, the critic and the actor on ``batch`` (B_S ∪ B_I ∪ B_O).

    Returns scalar metrics for logging. Advances learner.model_index by one.
    """
    method = cfg.method_config()
    dev = cfg.device
    p = _prepare(learner, batch, cfg)
    batch, kinds = p.batch, p.kinds
    both = batch.both_obs()
    n = kinds.shape[0]
    roll = kinds >= ROLLOUT_SUCC
    lr = lr_scale(ctx.step_in_round, cfg.lr_warmup_steps)
    metrics: dict[str, float] = {}
    _value_and_critic_steps(learner, p, cfg, lr, method, metrics)
    vh = learner.value

    g = torch.ones(n, device=dev)
    if method.train_critic:
        # 4. Gate from the updated, detached heads.
        g_raw, z_t = critic_gate(learner.critic, both, batch.terminal_success, method)
        p_v = torch.sigmoid(z_t)
        if p.labeled.any():
            metrics["critic/p_v_mean"] = float(p_v[p.labeled].mean())
        for name, sel in (
            ("rollout_succ", kinds == ROLLOUT_SUCC),
            ("intervention", kinds == INTERVENTION),
        ):
            if sel.any():
                metrics[f"gate/g_mean_{name}"] = float(g_raw[sel].mean())
                metrics[f"gate/g_std_{name}"] = float(g_raw[sel].std(unbiased=False))
        if ctx.step_in_round >= cfg.warmup_steps:
            g = g_raw

    # Imit-Recap: hard filter on the (updated) parent value head's TD residual.
    recap_pass = None
    if method.gate == "recap":
        recap_pass = recap_pass_of(vh, batch, cfg, ctx.recap_epsilon)
        if roll.any():
            metrics["recap/pass_rate"] = float(recap_pass[roll].mean())

    # 5. Pre-normalisation weights by source, then unit mean over valid non-SFT samples.
    w, valid = actor_weights(
        batch, kinds, g, method, cfg, ctx.round_index, learner.model_index, recap_pass
    )

    # 6. Weighted flow-matching actor loss (Eq. 1): (1/B) sum_i w_i l_i.
    # Samples weighing 0 (failed / unlabeled / stale rollouts) cannot change the loss: leave
    # them out of the actor's forward pass instead of multiplying their loss by 0.
    keep = (w > 0).nonzero().squeeze(1)
    per_sample = learner.trainable("actor")(batch.subset(keep), generator)
    loss_pi = (w[keep].detach() * per_sample).sum() / n
    _step(learner.opt_actor, loss_pi, learner.policy, cfg.grad_clip, cfg.lr_actor * lr)
    learner.model_index += 1
    metrics["loss/actor"] = float(loss_pi.detach())
    metrics["loss/actor_unweighted"] = float(per_sample.detach().mean()) if len(keep) else 0.0
    for name, sel in (
        ("non_sft", (kinds != DEMO) & valid),
        ("rollout_succ", (kinds == ROLLOUT_SUCC) & valid),
        ("intervention", (kinds == INTERVENTION) & valid),
    ):
        if sel.any():
            metrics[f"weights/mean_{name}"] = float(w[sel].mean())
            metrics[f"weights/std_{name}"] = float(w[sel].std(unbiased=False))
    metrics["lr_scale"] = lr
    return metrics


@torch.no_grad()
def recap_advantages(
    learner: Learner, batch: TrainBatch | Mapping[str, Any], cfg: TrainConfig
) -> torch.Tensor:
    """TD residuals of V_psi on a (held-out) rollout batch, (B,), for picking epsilon."""
    b = as_train_batch(learner, batch, cfg)
    vh = learner.value
    v_t = vh.expected(vh(b.obs))
    v_n = vh.expected(vh(b.next_obs))
    return W.recap_advantage(b.reward, v_t, v_n, b.episode_done, cfg.gamma)
