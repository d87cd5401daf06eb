"""Run a sliding-window (network-mode) surrogate causally over whole current traces, without NEURON.

The same epoch loop as the network engine for current-clamp input: the trace is cut into
epochs of ``epoch_samples``; for each, every trace's window ending at the epoch's last sample
(rest before t = 0: I = 0, v = ``v_rest_mV``) goes through ONE batched `Surrogate.predict`
call and the epoch's new samples are kept; sample 0 is the initial state ``v_rest_mV``.
Models with ``voltage_history`` see their own earlier output (closed loop); input-only models
see only the current. Used to validate network checkpoints on held-out traces of a dataset
and to calibrate a spike head's threshold.
"""
from __future__ import annotations

import numpy as np

from ..features.spikes import upward_crossings
from ..surrogate.spike_head import REFRACTORY_MS
from ..surrogate.model import Surrogate

__all__ = ["calibrate_spike_threshold", "compose", "rollout", "streaming_rollout"]


def rollout(surrogate: Surrogate, stimuli_nA: np.ndarray, features: np.ndarray, epoch_samples: int,
            v_rest_mV: np.ndarray | float = -70.0, spike_parts: bool = False):
    """(B, T) voltages (mV) of a sliding-window surrogate driven by (B, T) currents (nA) at its dt.

    ``features`` (B, F) or (F,) raw features; ``epoch_samples`` samples predicted per call
    (1 .. ``surrogate.sliding_horizon_samples``); ``v_rest_mV`` scalar or (B,) voltage at t = 0
    (the history a run starts from). Spike-head models: ``spike_parts=True`` returns
    (clipped voltage, spike probability) instead, before spikes are composed.
    """
    if not surrogate.is_sliding:
        raise ValueError("rollout needs a sliding-window (network-mode) surrogate; whole-trace surrogates "
                         "predict a trace in one call: use Surrogate.predict")
    x = np.asarray(stimuli_nA, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"stimuli_nA must be (B, T), got shape {x.shape}")
    if surrogate.config.streaming:
        if spike_parts:
            raise ValueError("spike_parts is for sliding-window spike-head surrogates, not streaming ones")
        return streaming_rollout(surrogate, x, features, v_rest_mV)[0]
    b, t_len = x.shape
    n_e = int(epoch_samples)
    if not 1 <= n_e <= surrogate.sliding_horizon_samples:
        raise ValueError(f"epoch_samples must be in [1, {surrogate.sliding_horizon_samples}], got {epoch_samples!r}")
    spiking = surrogate.config.spike_head
    if spike_parts and not spiking:
        raise ValueError("spike_parts=True is for spike-head surrogates")
    w = surrogate.n_samples
    closed_loop = surrogate.config.voltage_history
    v0 = np.broadcast_to(np.asarray(v_rest_mV, dtype=np.float32), (b,))
    # as in the engine: sample 0 is the initial state (t = 0), preceded by a window of rest
    # (I = 0, v = v0); sample s >= 1 sits at buffer index w - 1 + s
    i_buf = np.concatenate([np.zeros((b, w), np.float32), x[:, 1:]], axis=1)
    v_buf = np.concatenate([np.repeat(v0[:, None], w, axis=1), np.zeros((b, t_len - 1), np.float32)], axis=1)
    p_buf = np.zeros_like(v_buf) if spiking else None
    for s in range(1, t_len, n_e):
        n = min(n_e, t_len - s)
        end = w - 1 + s + n  # one past the epoch's last sample
        out = surrogate.predict(i_buf[:, end - w:end], features, surrogate.dt_ms, n_future=n, check_domain=False,
                                voltage_history_mV=v_buf[:, end - w:end] if closed_loop else None,
                                spike_parts=spiking)
        if spiking:
            v_buf[:, end - n:end], p_buf[:, end - n:end] = out[0][:, -n:], out[1][:, -n:]
        else:
            v_buf[:, end - n:end] = out[:, -n:]
    if not spiking:
        return v_buf[:, w - 1:]
    v_clip, prob = v_buf[:, w - 1:], p_buf[:, w - 1:]
    if spike_parts:
        return v_clip, prob
    return compose(surrogate, v_clip, prob, surrogate.spike_threshold)


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


def compose(surrogate: Surrogate, v_clip_mV: np.ndarray, prob: np.ndarray, threshold: float | None = None,
            delay_samples: int | None = None) -> np.ndarray:
    """Voltages (mV) with the spikes of a spike-head surrogate's (B, T) clipped voltage and probability
    (its own threshold and delay unless given)."""
    return surrogate.spike_composer(v_clip_mV.shape[0], threshold, delay_samples).step(v_clip_mV, prob)


def calibrate_spike_threshold(surrogate: Surrogate, stimuli_nA: np.ndarray, voltages_mV: np.ndarray,
                              features: np.ndarray, epoch_samples: int = 10) -> dict:
    """The spike-probability threshold and delay that best reproduce (B, T) reference traces' spikes.

    Rolls the spike-head surrogate out once over the traces (the probability of an input-only
    model depends on neither), then scores thresholds 0.05 … 0.95: the one with the smallest
    summed absolute spike-count error wins (ties: nearer 0.5). The delay is the median lag
    (samples) from a detection to the reference spike it announces (nearest within 2 ms).
    Returns {"threshold", "delay_samples", "count_abs_error", "spikes_reference",
    "spikes_surrogate", "table"}.
    """
    v_clip, prob = rollout(surrogate, stimuli_nA, features, epoch_samples,
                           v_rest_mV=np.asarray(voltages_mV)[:, 0], spike_parts=True)
    ref_rows, ref_cols = upward_crossings(voltages_mV)
    ref = np.bincount(ref_rows, minlength=len(voltages_mV))
    table = []
    for thr in np.round(np.arange(0.05, 0.951, 0.05), 2):
        n = np.bincount(upward_crossings(compose(surrogate, v_clip, prob, float(thr), 0))[0], minlength=len(ref))
        table.append({"threshold": float(thr), "count_abs_error": int(np.abs(n - ref).sum()),
                      "spikes_surrogate": int(n.sum())})
    best = min(table, key=lambda r: (r["count_abs_error"], abs(r["threshold"] - 0.5)))
    rows, cols = upward_crossings(compose(surrogate, v_clip, prob, best["threshold"], 0))
    window = int(round(2.0 / surrogate.dt_ms))
    lags = []
    for r, c in zip(rows, cols):
        d = ref_cols[ref_rows == r] - c
        if d.size and np.abs(d).min() <= window:
            lags.append(d[np.argmin(np.abs(d))])
    max_delay = min(int(round(REFRACTORY_MS / surrogate.dt_ms)), surrogate.spike_refractory_samples or 10**9) - 1
    delay = int(np.clip(np.round(np.median(lags)), 0, max_delay)) if lags else 0
    return {**best, "delay_samples": delay, "spikes_reference": int(ref.sum()), "epoch_samples": int(epoch_samples),
            "table": table}
