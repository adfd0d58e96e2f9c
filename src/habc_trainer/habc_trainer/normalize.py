"""Normalisation statistics for proprio, env_state and actions (computed from the store).

The same statistics object is saved with every checkpoint and applied at inference, so train and
deploy can never disagree. Mean/std (z-score) normalisation; min/max are kept for reporting and
for adapters that want bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Dims whose std is (nearly) zero, e.g. a gripper never used, must not blow up to inf.
STD_FLOOR = 1e-6


@dataclass(frozen=True)
class FeatureStats:
    """Per-dimension statistics of one feature. Every array is (F,) float32."""

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def from_array(cls, x: np.ndarray) -> FeatureStats:
        """x: (N, F) samples (any leading axes are flattened)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        if x.shape[0] == 0:
            raise ValueError("cannot compute normalisation statistics from zero samples")
        return cls(
            mean=x.mean(0).astype(np.float32),
            std=x.std(0).astype(np.float32),
            min=x.min(0).astype(np.float32),
            max=x.max(0).astype(np.float32),
        )

    @classmethod
    def identity(cls, dim: int) -> FeatureStats:
        z, o = np.zeros(dim, np.float32), np.ones(dim, np.float32)
        return cls(mean=z, std=o, min=-o, max=o)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., F) -> (..., F) z-scored."""
        mean = torch.as_tensor(self.mean, device=x.device, dtype=x.dtype)
        std = torch.as_tensor(self.std, device=x.device, dtype=x.dtype).clamp_min(STD_FLOOR)
        return (x - mean) / std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, device=x.device, dtype=x.dtype)
        std = torch.as_tensor(self.std, device=x.device, dtype=x.dtype).clamp_min(STD_FLOOR)
        return x * std + mean


@dataclass(frozen=True)
class NormStats:
    """Statistics keyed by feature name (features.PROPRIO, features.ACTION, features.ENV_STATE)."""

    features: dict[str, FeatureStats]

    def __getitem__(self, key: str) -> FeatureStats:
        if key not in self.features:
            raise KeyError(
                f"no normalisation statistics for {key!r}; have {sorted(self.features)}"
            )
        return self.features[key]

    def __contains__(self, key: str) -> bool:
        return key in self.features

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> NormStats:
        return cls({k: FeatureStats.from_array(v) for k, v in arrays.items()})

    def to_tensors(self, prefix: str = "norm.") -> dict[str, torch.Tensor]:
        """Flat tensor dict for safetensors: ``<prefix><feature>.<stat>``."""
        out = {}
        for name, st in self.features.items():
            for stat in ("mean", "std", "min", "max"):
                out[f"{prefix}{name}.{stat}"] = torch.from_numpy(
                    np.ascontiguousarray(getattr(st, stat))
                )
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str = "norm.") -> NormStats:
        grouped: dict[str, dict[str, np.ndarray]] = {}
        for key, t in tensors.items():
            if not key.startswith(prefix):
                continue
            name, stat = key[len(prefix) :].rsplit(".", 1)
            grouped.setdefault(name, {})[stat] = t.numpy().astype(np.float32)
        return cls({n: FeatureStats(**s) for n, s in grouped.items()})
