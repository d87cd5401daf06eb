"""Spike-train agreement measures (times in ms)."""
from __future__ import annotations

import numpy as np

__all__ = ["coincidence_gamma"]


def coincidence_gamma(t_a: np.ndarray, t_b: np.ndarray, window_ms: float, duration_ms: float) -> float:
    """Kistler's coincidence factor of spike train b against reference a (1 = identical, 0 = chance)."""
    if t_a.size == 0 and t_b.size == 0:
        return 1.0
    if t_a.size == 0 or t_b.size == 0:
        return 0.0
    coinc = sum(bool(np.any(np.abs(t_b - t) <= window_ms)) for t in t_a)
    rate_b = t_b.size / duration_ms
    expected = 2 * rate_b * window_ms * t_a.size
    norm = 1 - 2 * rate_b * window_ms
    return float((coinc - expected) / (0.5 * (t_a.size + t_b.size) * norm))
