"""A neuron's measured FI curve, as the points that choose whose step trains it fires.

A neuron given by features has no spike trains of its own: under one step it fires those of its nearest training
models (`event_model.neighbour_step_train`). The checkpoint's features (rheobase, the FI slope at rheobase, the rate
at twice rheobase, passive and AP features) say little about where a PV cell's tonic branch lies: the family's
cells stutter at a few Hz and then jump to 100-300 Hz within tens of pA. A recorded FI curve says it. Given one,
the neighbours are chosen on the rheobase and the neuron's rates at `FI_MULTIPLES` x rheobase instead (standardised
over the training models; leave-one-model-out, rates from every other amplitude and scored on the others: count
error 26.8 -> 21.9 %, FI 17.2 -> 11.4 Hz; docs/surrogate.md).

Rates are spikes per second during the step (Hz) for steps as long as the checkpoint's training steps.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["FI_MULTIPLES", "check_fi_rates", "fi_neighbours", "rates_at_multiples", "training_fi_rates"]

#: the FI points used: the rate at these multiples of the neuron's rheobase (I_thr)
FI_MULTIPLES = (2.0, 3.0, 4.0)


def rates_at_multiples(amps_nA: Sequence[float], rates_Hz: Sequence[float], rheobase_nA: float) -> np.ndarray:
    """(len(FI_MULTIPLES),) rates (Hz) of a measured FI curve at the multiples of `rheobase_nA`, linear between the
    measured amplitudes; NaN where a multiple lies outside them. Raises ValueError on a malformed curve."""
    a = np.asarray(amps_nA, dtype=float)
    r = np.asarray(rates_Hz, dtype=float)
    if a.ndim != 1 or a.shape != r.shape or a.size < 2:
        raise ValueError(f"an FI curve needs amplitudes (nA) and rates (Hz) of one length >= 2, got shapes "
                         f"{a.shape} and {r.shape}")
    if not (np.isfinite(a).all() and np.isfinite(r).all()) or (r < 0).any():
        raise ValueError("an FI curve needs finite amplitudes (nA) and finite rates >= 0 (Hz)")
    order = np.argsort(a)
    a, r = a[order], r[order]
    if (np.diff(a) <= 0).any():
        raise ValueError("an FI curve's amplitudes must differ from each other (one rate per amplitude)")
    if not np.isfinite(rheobase_nA) or rheobase_nA <= 0:
        raise ValueError(f"rates at multiples of the rheobase need a rheobase > 0 nA, got {rheobase_nA!r}")
    x = rheobase_nA * np.asarray(FI_MULTIPLES)
    return np.where((x >= a[0]) & (x <= a[-1]), np.interp(x, a, r), np.nan)


def training_fi_rates(trains: Sequence, rheobases_nA: Sequence[float]) -> np.ndarray:
    """(M, len(FI_MULTIPLES)) rates (Hz) of training models at the multiples of their own rheobase, read from their
    step trains (`step_trains.StepTrains`, None: NaN) over their training step; NaN beyond their amplitudes."""
    out = np.full((len(trains), len(FI_MULTIPLES)), np.nan)
    for i, (table, thr) in enumerate(zip(trains, rheobases_nA)):
        if table is None:
            continue
        for j, mult in enumerate(FI_MULTIPLES):
            amp = mult * float(thr)
            if table.covers(amp, table.dur_ms):
                out[i, j] = table.train(amp, table.dur_ms).size / (table.dur_ms / 1000.0)
    return out


def fi_neighbours(target: np.ndarray, models: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(indices (k,) into `models`, weights (k,) summing to 1): the training models nearest to a neuron's
    [rheobase nA, rates at FI_MULTIPLES Hz] (`target`, NaN where not measured) among `models` (M, same columns),
    each column standardised over the models, over the columns both have; inverse-square-distance weighted."""
    target, models = np.asarray(target, float), np.asarray(models, float)
    mean, sd = np.nanmean(models, axis=0), np.nanstd(models, axis=0)
    z_t, z_m = (target - mean) / np.where(sd > 0, sd, 1.0), (models - mean) / np.where(sd > 0, sd, 1.0)
    diff = np.where(np.isfinite(z_m) & np.isfinite(z_t), z_m - z_t, np.nan)
    have = np.isfinite(diff).sum(axis=1)
    # mean square over the shared columns (a model missing a point is not closer for it); none shared: farthest
    d = np.where(have > 0, np.sqrt(np.nansum(diff ** 2, axis=1) / np.maximum(have, 1)), np.inf)
    k = min(k, int(np.isfinite(d).sum()) or 1)
    near = np.argsort(d)[:k]
    w = 1.0 / np.maximum(d[near], 1e-9) ** 2
    return near, w / w.sum()


def check_fi_rates(fi_rates_Hz: np.ndarray | None, n_items: int) -> np.ndarray | None:
    """`fi_rates_Hz` as a (n_items, len(FI_MULTIPLES)) float array (None stays None); NaN marks a point not measured.
    Raises ValueError on another shape or a negative or infinite rate."""
    if fi_rates_Hz is None:
        return None
    fi = np.asarray(fi_rates_Hz, dtype=float)
    if fi.ndim == 1:
        fi = np.broadcast_to(fi, (n_items, fi.shape[0]))
    if fi.shape != (n_items, len(FI_MULTIPLES)):
        raise ValueError(f"fi_rates_Hz must be ({n_items}, {len(FI_MULTIPLES)}): the rates (Hz) at "
                         f"{FI_MULTIPLES} x rheobase per item (NaN where not measured), got shape {fi.shape}")
    if np.isinf(fi).any() or (fi < 0).any():
        raise ValueError("fi_rates_Hz must be rates >= 0 Hz (NaN where not measured)")
    return fi
