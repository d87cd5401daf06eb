"""Spike-train agreement measures (times in ms)."""
from __future__ import annotations

import numpy as np

__all__ = ["coincidence_gamma", "psth_explained_variance", "subthreshold_rmse_mV"]


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


def subthreshold_rmse_mV(t_ms: np.ndarray, v_a_mV: np.ndarray, v_b_mV: np.ndarray, spikes: list[np.ndarray],
                         before_ms: float = 2.0, after_ms: float = 6.0) -> float:
    """RMSE (mV) of two voltage traces with every spike of either train cut out (−2 … +6 ms); NaN if nothing is left."""
    keep = np.ones(t_ms.size, dtype=bool)
    for s in spikes:
        for ts in s:
            keep &= ~((t_ms > ts - before_ms) & (t_ms < ts + after_ms))
    return float(np.sqrt(np.mean((v_a_mV[keep] - v_b_mV[keep]) ** 2))) if keep.any() else float("nan")


def psth_explained_variance(t_a: np.ndarray, t_b: np.ndarray, duration_ms: float, sigma_ms: float = 10.0,
                            bin_ms: float = 1.0) -> float:
    """Explained variance of spike train a's Gaussian-smoothed rate (σ `sigma_ms`) by b's, as GLIF reports.

    EV = 1 − mean((r_a − r_b)²) / Var(r_a) (a rate offset counts as error), trains pooled over trials or cells beforehand (times in ms);
    NaN when a's smoothed rate does not vary (no spikes).
    """
    edges = np.arange(0.0, duration_ms + bin_ms, bin_ms)
    half = int(4 * sigma_ms / bin_ms)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * bin_ms / sigma_ms) ** 2)
    kernel /= kernel.sum()
    rate_a = np.convolve(np.histogram(t_a, edges)[0].astype(float), kernel, mode="same")
    rate_b = np.convolve(np.histogram(t_b, edges)[0].astype(float), kernel, mode="same")
    var = rate_a.var()
    return float(1.0 - np.mean((rate_a - rate_b) ** 2) / var) if var > 0 else float("nan")
