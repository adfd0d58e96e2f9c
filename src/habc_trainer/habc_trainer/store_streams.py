"""train_round's entry to the episode store: TrainConfig -> StreamConfig -> WindowStreams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from habc_trainer.store import EpisodeStore
from habc_trainer.streams import StreamConfig, WindowStreams

# Share of labeled rollout episodes kept out of training: Imit-Recap picks epsilon on them
# (spec §7: "picked on held-out data") and the gated HABC methods measure their critic's
# calibration on them. Methods without a gate (SFT, Imit-DAgger) keep every episode.
HELDOUT_FRACTION = 0.1


def stream_config_for(cfg: Any, round_index: int) -> StreamConfig:
    """The window / credit settings a TrainConfig implies."""
    method = cfg.method_config()
    model = cfg.model_config()
    picks_epsilon = getattr(method, "gate", "") == "recap" and cfg.recap_epsilon is None
    holds_out = picks_epsilon or getattr(method, "train_critic", False)
    return StreamConfig(
        horizon=model.horizon,
        credit_mode=method.credit_assignment,
        gamma=cfg.gamma,
        failure_cost=cfg.failure_penalty,
        cameras=tuple(model.cameras),
        image_size=model.image_size if model.cameras else None,
        heldout_fraction=HELDOUT_FRACTION if holds_out else 0.0,
        max_round=round_index,
    )


def open_streams(data_root: Path | str, round_index: int, cfg: Any) -> WindowStreams:
    """Streams over every episode of rounds <= round_index in the store at `data_root`."""
    return WindowStreams(EpisodeStore(data_root), stream_config_for(cfg, round_index))
