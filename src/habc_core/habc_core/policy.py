"""The infer boundary every runtime calls a policy through (no torch, no rclpy).

The policy node, the DDS-free collector and the trainer's checkpoints all meet here: a policy is
anything with `infer(obs) -> {ACTIONS_OUT: (H, D) float32}`. obs holds single-frame arrays keyed
like the features (`proprio` (P,), `env_state` (S,), `images.<cam>` (h, w, 3) uint8 RGB) plus
`task` (str), and on a chunk boundary the running chunk's prefix (PREFIX_ACTIONS, PREFIX_FROZEN);
a result may also carry `model_index` and PREFIX_GUIDED. What the trainer needs on top (a loss) is
its own protocol, built on this one (habc_trainer.models.policy.TrainablePolicy).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

ACTIONS_OUT = "actions"  # key of infer()'s result: the (H, D) chunk in robot units
# Real-time chunking (habc_control.chunk_executor): a request may carry the rows of the running
# chunk still to come, in robot units, row 0 at the observation's tick, and how many of them
# will surely run before the new chunk lands. A policy that honours them (inpaints its chunk on
# that prefix) says so with PREFIX_GUIDED in its result; any other may ignore both keys.
PREFIX_ACTIONS = "prefix.actions"  # (P, D) float32
PREFIX_FROZEN = "prefix.frozen"  # int, 0 <= frozen <= P
PREFIX_GUIDED = "prefix_guided"  # bool in infer()'s result


@runtime_checkable
class Policy(Protocol):
    """What the policy node and the collector need from a policy."""

    def infer(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """obs: one frame (see the module docstring) -> {"actions": (H, D) float32}, un-normalised
        (robot) units."""
        ...


SpecKind = Literal["hold", "server", "callable", "checkpoint"]


def spec_kind(spec: str) -> SpecKind:
    """What a policy spec (the policy node's `checkpoint`, the collector's `--policy`) names:
    "" holds still, `ws://host:port` is a policy server, `module:callable` a Python factory,
    anything else a checkpoint directory. One reading for every runtime."""
    if not spec:
        return "hold"
    if spec.startswith(("ws://", "wss://")):
        return "server"
    module, sep, attr = spec.partition(":")
    if sep and module and attr and "/" not in module and not Path(spec).exists():
        return "callable"
    return "checkpoint"


def load_callable(spec: str) -> Policy:
    """`module:callable` -> the Policy that `callable()` returns (custom or wrapped policies)."""
    module, _, attr = spec.partition(":")
    try:
        make = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"checkpoint: {spec!r} names no callable ({exc})") from None
    policy = make()
    if not isinstance(policy, Policy):
        raise ValueError(f"checkpoint: {spec!r} returned a {type(policy).__name__}, no infer(obs)")
    return policy
