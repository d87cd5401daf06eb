"""Run a streaming (network-mode) surrogate over whole current traces, without NEURON.

The same `noble_neuron.surrogate.streaming.StreamingRunner` the network engine uses, fed the
traces epoch by epoch as the engine feeds a cell's current-clamp input: sample 0 is the initial
state ``v_rest_mV``, every later one comes from the model's recurrence with its own spikes fed
back. Used to validate network checkpoints on held-out traces of a dataset (training's
closed-loop scores, benchmarks/network_rollout.py).
"""
from __future__ import annotations

import numpy as np

from ..surrogate.model import Surrogate

__all__ = ["rollout", "streaming_rollout"]


def rollout(surrogate: Surrogate, stimuli_nA: np.ndarray, features: np.ndarray,
            v_rest_mV: np.ndarray | float = -70.0) -> np.ndarray:
    """(B, T) voltages (mV) of a streaming surrogate driven by (B, T) currents (nA) at its dt.

    ``features`` (B, F) or (F,) raw features; ``v_rest_mV`` scalar or (B,) voltage at t = 0.
    Spike times too: `streaming_rollout`.
    """
    if not surrogate.is_streaming:
        raise ValueError("rollout needs a streaming (network-mode) surrogate; whole-trace surrogates "
                         "predict a trace in one call: use Surrogate.predict")
    x = np.asarray(stimuli_nA, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"stimuli_nA must be (B, T), got shape {x.shape}")
    return streaming_rollout(surrogate, x, features, v_rest_mV)[0]


def streaming_rollout(surrogate: Surrogate, stimuli_nA: np.ndarray, features: np.ndarray,
                      v_rest_mV: np.ndarray | float = -70.0, chunk_steps: int = 2,
                      keys: np.ndarray | None = None) -> tuple[np.ndarray, list]:
    """((B, T) voltages (mV), spike times per trace (ms)) of a streaming surrogate over (B, T) currents (nA).

    The same `StreamingRunner` the NEURON engine uses, fed ``chunk_steps`` model steps at a
    time as engine epochs are (0.6 ms by default); sample 0 is ``v_rest_mV``. Samples after the
    last whole model step hold the last value. ``keys`` (B,): each trace's spike-draw key
    (`noble_neuron.surrogate.streaming.cell_key`; default the row index)."""
    from ..surrogate.streaming import StreamingRunner

    x = np.asarray(stimuli_nA, dtype=np.float64)
    b, t_len = x.shape
    f = surrogate.config.time_coarsening
    runner = StreamingRunner(surrogate, np.broadcast_to(np.asarray(features, dtype=float),
                                                        (b, len(surrogate.config.feature_names))),
                             np.broadcast_to(np.asarray(v_rest_mV, dtype=float), (b,)), keys)
    out = np.empty((b, t_len), dtype=np.float32)
    out[:, 0] = runner.v_last
    n_whole = (t_len - 1) // f * f
    step = max(1, int(chunk_steps)) * f
    for s0 in range(1, 1 + n_whole, step):
        s1 = min(s0 + step, 1 + n_whole)
        out[:, s0:s1] = runner.advance(x[:, s0:s1])
    out[:, 1 + n_whole:] = out[:, n_whole:n_whole + 1]
    return out, runner.spike_times_ms()
