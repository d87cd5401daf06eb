"""THE spike detector: every spike count and time in noble_neuron (features, decoders, training
labels, benchmarks, tests) is an upward crossing of SPIKE_THRESHOLD_MV (−20 mV) found here.

* `spike_times` / `count_spikes`: one trace, crossing times interpolated between samples, with a
  Schmitt-trigger guard (a second spike needs the trace to fall ``hysteresis_mV`` below threshold);
* `spike_times_at`: the same for a trace recorded at arbitrary times (NEURON under CVode);
* `upward_crossings`: batched (B, T) sample indices without the guard, for training labels and
  event grids where every crossing sample matters (identical for action potentials, which fall far
  below threshold between spikes).
"""
from __future__ import annotations

import math

import numpy as np

from ..constants import SPIKE_THRESHOLD_MV
from ..validation import is_real

__all__ = ["SPIKE_THRESHOLD_MV", "as_trace", "check_dt", "spike_times", "spike_times_at", "count_spikes", "upward_crossings"]


def as_trace(v_mV: np.ndarray, name: str = "v_mV") -> np.ndarray:
    v = np.asarray(v_mV, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-D voltage trace, got shape {v.shape}; pass one trace at a time")
    if v.size < 2:
        raise ValueError(f"{name} needs at least 2 samples, got {v.size}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN/inf; the simulation likely diverged - check dt and the model")
    return v


def check_dt(dt_ms: float) -> float:
    if not is_real(dt_ms):
        raise TypeError(f"dt_ms must be a number (ms), got {type(dt_ms).__name__}")
    dt = float(dt_ms)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt_ms must be a positive finite sampling step in ms, got {dt_ms!r}")
    return dt


def spike_times(
    v_mV: np.ndarray,
    dt_ms: float,
    threshold_mV: float = SPIKE_THRESHOLD_MV,
    *,
    hysteresis_mV: float = 5.0,
) -> np.ndarray:
    """Spike times (ms, t=0 at sample 0): upward crossings of ``threshold_mV``.

    The crossing time is linearly interpolated between the two bracketing samples,
    so it is accurate to well below one ``dt_ms``.  Refractory guard: after a
    crossing, another spike is only counted once the trace has fallen below
    ``threshold_mV - hysteresis_mV``, so noise jittering around threshold is not
    double-counted.  A trace that starts above threshold does not count as a spike.
    """
    v = as_trace(v_mV)
    dt = check_dt(dt_ms)
    rise, frac = _rises(v, float(threshold_mV), hysteresis_mV)
    return (rise - 1 + frac) * dt


def spike_times_at(t_ms: np.ndarray, v_mV: np.ndarray, threshold_mV: float = SPIKE_THRESHOLD_MV, *,
                   hysteresis_mV: float = 5.0) -> np.ndarray:
    """Spike times (ms) of a trace sampled at times `t_ms` (any spacing, e.g. CVode's), as `spike_times`."""
    t = np.asarray(t_ms, dtype=float)
    v = as_trace(v_mV)
    if t.shape != v.shape:
        raise ValueError(f"t_ms and v_mV must have the same shape, got {t.shape} and {v.shape}")
    rise, frac = _rises(v, float(threshold_mV), hysteresis_mV)
    return t[rise - 1] + frac * (t[rise] - t[rise - 1])


def _rises(v: np.ndarray, thr: float, hysteresis_mV: float) -> tuple[np.ndarray, np.ndarray]:
    """(sample i of each spike, with v[i-1] < thr <= v[i]; fraction of the way from i-1 to i)."""
    if hysteresis_mV < 0 or not math.isfinite(hysteresis_mV):
        raise ValueError(f"hysteresis_mV must be a finite value >= 0, got {hysteresis_mV!r}")
    # Schmitt-trigger state: 1 above thr, 0 below thr - hysteresis, -1 undecided
    # (carry the previous state).  Forward-fill is done with a running max of indices.
    state = np.where(v >= thr, 1, np.where(v < thr - hysteresis_mV, 0, -1))
    state = np.concatenate(([1 if v[0] >= thr else 0], state))
    known_idx = np.where(state >= 0, np.arange(state.size), 0)
    state = state[np.maximum.accumulate(known_idx)]
    # state[k+1] belongs to sample k; a 0 -> 1 step at sample i implies v[i-1] < thr <= v[i].
    rise = np.flatnonzero((state[1:] == 1) & (state[:-1] == 0))
    rise = rise[rise > 0]  # sample 0 has no predecessor to interpolate from
    v0, v1 = v[rise - 1], v[rise]
    return rise, (thr - v0) / (v1 - v0)


def count_spikes(
    v_mV: np.ndarray,
    dt_ms: float,
    threshold_mV: float = SPIKE_THRESHOLD_MV,
    window_ms: tuple[float, float] | None = None,
) -> int:
    """Number of spikes (see :func:`spike_times`), optionally only those whose
    crossing time lies in ``[window_ms[0], window_ms[1])``."""
    t = spike_times(v_mV, dt_ms, threshold_mV)
    if window_ms is None:
        return int(t.size)
    if len(window_ms) != 2:
        raise ValueError(f"window_ms must be a (start_ms, end_ms) pair, got {window_ms!r}")
    t0, t1 = float(window_ms[0]), float(window_ms[1])
    if not t1 > t0:
        raise ValueError(f"window_ms end must exceed start, got {window_ms!r}")
    return int(np.count_nonzero((t >= t0) & (t < t1)))


def upward_crossings(v_mV: np.ndarray, level: float = SPIKE_THRESHOLD_MV) -> tuple[np.ndarray, np.ndarray]:
    """(rows, samples) of the first sample at or above `level` after one below it, for (B, T) voltages."""
    v = np.asarray(v_mV)
    rows, cols = np.nonzero((v[:, :-1] < level) & (v[:, 1:] >= level))
    return rows, cols + 1
