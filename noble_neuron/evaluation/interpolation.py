"""The non-learned baseline of whole-trace accuracy: a training model at a held-out step amplitude, from the
detailed traces of its two nearest training amplitudes.

Spike times: the k-th spike's time interpolated linearly in amplitude between the two traces (the count
rounded from theirs; spikes only one of them has are taken from it). Voltage: the surrogate's backbone
with those spikes (`noble_neuron.surrogate.event_model.compose_voltage`). A learned spike model earns its
place only where it beats this.
"""
from __future__ import annotations

import numpy as np

from ..surrogate.decoder import interpolated_spike_times

__all__ = ["interpolation_baseline"]


def interpolation_baseline(surrogate, stim_nA: np.ndarray, amps_nA: np.ndarray, features: np.ndarray,
                           model_rows: list[tuple[np.ndarray, list[np.ndarray]]]) -> np.ndarray:
    """(N, L) voltages (mV) for held-out steps (N, L) nA of amplitudes (N,), features (N, F), and per item its
    model's training amplitudes and spike times (ms)."""
    from ..surrogate.event_model import compose_voltage

    spikes = [interpolated_spike_times(a, amps, sp) for a, (amps, sp) in zip(amps_nA, model_rows)]
    return compose_voltage(surrogate, np.asarray(stim_nA, dtype=np.float64), spikes, features)
