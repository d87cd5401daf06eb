"""`FeatureScaler`: the min-max map of a surrogate's raw per-model features (I_thr nA, s_thr Hz/nA, …)
to the range its network embeds ([0.5, 3.5] as NOBLE), fit on the training models only."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["FeatureScaler"]


@dataclass(frozen=True)
class FeatureScaler:
    """Min-max map of raw features to ``[low, high]`` (NOBLE uses [0.5, 3.5]).

    Fit on TRAINING models only, so test models keep their honest out-of-range
    values (see :meth:`outside_range`).  Stored as tuples so it is hashable and
    serialises to plain JSON.
    """

    names: tuple[str, ...]
    data_min: tuple[float, ...]
    data_max: tuple[float, ...]
    low: float = 0.5
    high: float = 3.5

    def __post_init__(self) -> None:
        n = len(self.names)
        if not (len(self.data_min) == len(self.data_max) == n) or n == 0:
            raise ValueError("names, data_min and data_max must be non-empty and of equal length")
        if len(set(self.names)) != n:
            raise ValueError(f"feature names must be unique, got {list(self.names)}")
        lo, hi = np.asarray(self.data_min, float), np.asarray(self.data_max, float)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError("data_min/data_max must be finite")
        flat = np.flatnonzero(hi <= lo)
        if flat.size:
            bad = [self.names[i] for i in flat]
            raise ValueError(f"feature(s) {bad} have zero (or negative) range; drop constant features before scaling")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low):
            raise ValueError(f"need finite low < high, got low={self.low!r}, high={self.high!r}")
        object.__setattr__(self, "names", tuple(str(s) for s in self.names))
        object.__setattr__(self, "data_min", tuple(float(x) for x in lo))
        object.__setattr__(self, "data_max", tuple(float(x) for x in hi))
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    @classmethod
    def fit(cls, values: np.ndarray, names: Sequence[str], low: float = 0.5, high: float = 3.5) -> "FeatureScaler":
        """Fit on ``values`` of shape (n_models, n_features) - training models only."""
        x = np.asarray(values, dtype=float)
        if x.ndim != 2:
            raise ValueError(f"values must be (n_models, n_features), got shape {x.shape}; reshape a single feature to (-1, 1)")
        if x.shape[0] < 2:
            raise ValueError(f"need >= 2 training models to fit a range, got {x.shape[0]}")
        if x.shape[1] != len(names):
            raise ValueError(f"values has {x.shape[1]} feature columns but {len(names)} names were given")
        if not np.all(np.isfinite(x)):
            raise ValueError("values contain NaN/inf; drop models whose features could not be computed")
        return cls(tuple(names), tuple(x.min(axis=0)), tuple(x.max(axis=0)), low, high)

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(x, dtype=float)
        if a.ndim == 0 or a.shape[-1] != len(self.names):
            raise ValueError(f"{what} must have last dimension {len(self.names)} ({list(self.names)}), got shape {a.shape}")
        return a

    @property
    def _scale(self) -> np.ndarray:
        return (self.high - self.low) / (np.asarray(self.data_max) - np.asarray(self.data_min))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw features (..., n_features) -> scaled; training range maps to [low, high]."""
        a = self._check(x, "x")
        return self.low + (a - np.asarray(self.data_min)) * self._scale

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        """Scaled features (..., n_features) -> raw units."""
        a = self._check(y, "y")
        return np.asarray(self.data_min) + (a - self.low) / self._scale

    def outside_range(self, x: np.ndarray) -> np.ndarray:
        """Boolean array, same shape as raw ``x``: True where a value lies outside the
        training range (the surrogate would extrapolate).  ``.any(axis=-1)`` per model."""
        a = self._check(x, "x")
        return (a < np.asarray(self.data_min)) | (a > np.asarray(self.data_max))

    def to_dict(self) -> dict:
        """JSON-safe representation (plain lists and floats)."""
        return {
            "names": list(self.names),
            "data_min": [float(v) for v in self.data_min],
            "data_max": [float(v) for v in self.data_max],
            "low": self.low,
            "high": self.high,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureScaler":
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, dict):
            raise TypeError(f"expected a dict from FeatureScaler.to_dict(), got {type(d).__name__}")
        missing = {"names", "data_min", "data_max"} - d.keys()
        if missing:
            raise ValueError(f"scaler dict is missing keys {sorted(missing)}; was it written by FeatureScaler.to_dict()?")
        return cls(
            tuple(d["names"]), tuple(d["data_min"]), tuple(d["data_max"]),
            float(d.get("low", 0.5)), float(d.get("high", 3.5)),
        )
