"""What a checkpoint says of itself for other tools and for people: config.json and README.md.

``config.json`` holds the model and train configs and the counters as plain JSON beside
``model.safetensors`` (any safetensors reader gets the tensors, any JSON reader what they are),
and ``README.md`` is a short model card: round, method, actor, data, how to load and serve it.
Both are covered by checksums.json like every other file.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from habc_trainer.config import TrainConfig
from habc_trainer.models.config import ModelConfig

FORMAT = "habc-checkpoint"


def config_json(
    cfg: TrainConfig, model: ModelConfig, trainer: dict[str, Any], version: int
) -> bytes:
    doc = {
        "format": FORMAT,
        "version": version,
        "round_index": trainer["round_index"],
        "model_index": trainer["model_index"],
        "method": cfg.method,
        "actor": "lerobot" if model.lerobot else "flow",
        "model": dataclasses.asdict(model),
        "train": cfg.to_dict(),
        # model.safetensors: one prefix per network (what habc_trainer.checkpoint loads)
        "tensors": {
            "actor.": "the policy",
            "critic.": "dual-head critic",
            "value.": "parent value head",
            "norm.": "normalisation statistics",
        },
    }
    return json.dumps(doc, indent=1, sort_keys=False).encode()


def model_card(
    cfg: TrainConfig, model: ModelConfig, trainer: dict[str, Any], manifest: dict[str, Any]
) -> bytes:
    data = manifest.get("data") or {}
    actor = (
        f"LeRobot policy from `{model.lerobot}`"
        if model.lerobot
        else f"flow-matching actor ({cfg.model_preset} preset, d_model {model.d_model})"
    )
    cams = ", ".join(model.cameras) or "none (state observations)"
    lines = [
        f"# habc-rig checkpoint: round {trainer['round_index']}, method `{cfg.method}`",
        "",
        f"- actor: {actor}; chunk {model.horizon} steps, {model.execute_steps} executed",
        f"- observations: proprio {model.proprio_dim}, env state {model.env_state_dim}, "
        f"cameras {cams} at {model.image_size} px; actions {model.action_dim}",
        f"- trained: {trainer['model_index']} actor steps in all "
        f"(`model_index`, stamped on the rollouts it drives)",
    ]
    if data:
        rounds = ", ".join(str(r) for r in data.get("rounds", []))
        lines.append(
            f"- data: {data.get('episodes', '?')} episodes, {data.get('frames', '?')} frames, "
            f"rounds {rounds}, store revision {data.get('store_revision', '?')}"
        )
    sizes = manifest.get("stream_sizes")
    if sizes:
        lines.append("- windows per stream: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    lines += [
        "",
        "Load: `habc_trainer.checkpoint.load_policy(<this dir>)` (every file is checked against",
        "checksums.json first). Serve: `habc-policy-server --checkpoint <this dir>`; deploy:",
        "`checkpoint:=<this dir>` or the server's `ws://` address in the rollout graph.",
        "",
    ]
    return "\n".join(lines).encode()
