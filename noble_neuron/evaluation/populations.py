"""How far one population of FI curves lies from another (sampled neurons vs held-out detailed models).

Each curve (rates in Hz over step amplitudes in nA) is summarised by its rheobase (the first amplitude that fires),
its rates at fixed currents and its largest jump (the most the rate rises within `JUMP_WINDOW_NA`: the family's
stuttering-to-tonic transition); two populations are compared statistic by statistic by the 1-D Wasserstein
distance, in units of the reference population's standard deviation.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["JUMP_WINDOW_NA", "RATE_AT_NA", "curve_statistics", "population_distances"]

#: the rates compared at these step amplitudes (nA)
RATE_AT_NA = (0.2, 0.3, 0.4)
#: a jump is the largest rise of the rate within this much current (nA)
JUMP_WINDOW_NA = 0.02
_GRID_STEP_NA = 0.002


def curve_statistics(amps_nA: np.ndarray, rates_Hz: np.ndarray) -> dict[str, float]:
    """{statistic: value} of one FI curve (NaN where the curve does not reach it)."""
    a, r = np.asarray(amps_nA, float), np.asarray(rates_Hz, float)
    keep = np.isfinite(a) & np.isfinite(r)
    a, r = a[keep], r[keep]
    if a.size < 2:  # a model whose FI curve is undefined: every statistic undefined
        return {"rheobase_nA": float("nan"), **{f"rate_at_{1000 * amp:.0f}pA_Hz": float("nan") for amp in RATE_AT_NA},
                "largest_jump_Hz": float("nan")}
    order = np.argsort(a)
    a, r = a[order], r[order]
    out = {"rheobase_nA": float(a[np.argmax(r > 0)]) if (r > 0).any() else float("nan")}
    for amp in RATE_AT_NA:
        out[f"rate_at_{1000 * amp:.0f}pA_Hz"] = float(np.interp(amp, a, r)) if a[0] <= amp <= a[-1] else float("nan")
    grid = np.arange(a[0], a[-1] - JUMP_WINDOW_NA + 1e-12, _GRID_STEP_NA)
    rise = np.interp(grid + JUMP_WINDOW_NA, a, r) - np.interp(grid, a, r)
    out["largest_jump_Hz"] = float(rise.max()) if rise.size else float("nan")
    return out


def population_distances(curves: Sequence[tuple[np.ndarray, np.ndarray]],
                         reference: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float | None]:
    """{statistic: Wasserstein distance between the populations / the reference's standard deviation}; None where
    either population has no value of it or the reference does not spread (JSON-safe)."""
    from scipy.stats import wasserstein_distance

    mine = [curve_statistics(*c) for c in curves]
    ref = [curve_statistics(*c) for c in reference]
    out: dict[str, float | None] = {}
    for key in curve_statistics(np.zeros(0), np.zeros(0)):
        x = np.array([m[key] for m in mine])
        y = np.array([m[key] for m in ref])
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        sd = float(np.std(y))
        out[key] = float(wasserstein_distance(x, y) / sd) if x.size and y.size > 1 and sd > 0 else None
    return out
