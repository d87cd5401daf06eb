"""Spikes as events for whole-trace surrogates: training targets and the trace decoder.

A regression of the whole somatic voltage blurs action potentials whose phase the model is
unsure of (the first shipped whole-trace checkpoint fired 1 spike where its detailed cell
fired 38). Spike times everywhere are `noble_neuron.features.spikes.spike_times` (upward −20 mV
crossings, interpolated between samples). An event model (``SurrogateConfig.event_output``) predicts, on a time grid
``time_coarsening`` times coarser than the data (0.24 ms for 0.06 ms data), two smooth
channels:

- the spike phase θ(t) (``"phase"``): the spike count interpolated linearly between spike
  times (θ = k at the k-th spike, 0 before the stimulus, rising to 1 at the first spike,
  continuing at the last interspike rate after the last spike but never above N + 1/2), a
  monotone low-frequency target whose error is the timing error (a spike-probability channel
  was compared and dropped: where unsure it stays below threshold and loses spikes; README);
- the interspike voltage: the voltage with each action potential's window
  [t_k − pre, t_k + post] (upstroke to the fast-AHP trough) bridged by a straight line.

`compose_traces` turns them back into a voltage on the data grid: spike times come out of
θ with sub-sample precision (linear interpolation of its integer crossings), the interspike voltage is
interpolated to the data grid and each model's own average action potential (`ap_waveform`,
aligned on the exact −20 mV crossing, through its fast-AHP trough) is pasted at every spike:
joined to the interspike voltage before the crossing by an offset that fades to zero at it,
relaxing back to it after the trough. The trace's −20 mV crossings are then the decoded
spike times (to ~0.01 ms), and AP shape and AHP depth are the model's own.

`StreamComposer` is the same decoder for streaming (network-mode) surrogates, chunk by chunk:
there spikes are fired step by step and the voltage between them is clipped below threshold,
never within the training data's shortest interspike interval (`refractory_samples`).
"""
from __future__ import annotations

import numpy as np

from ..features.spikes import upward_crossings

__all__ = ["EVENT_OUTPUTS", "StreamComposer", "ap_waveform", "ahp_trough_ms", "bridged_voltage", "coarsen", "compose_traces",
           "interpolated_spike_times", "paste_action_potentials", "phase_target", "refractory_samples", "spikes_from_phase", "blend_templates", "nearest_weights"]

EVENT_OUTPUTS = ("none", "phase")
#: never let θ reach the next integer after the last spike: it stops half a spike short
PHASE_TAIL = 0.5
#: after a pasted action potential's fast-AHP trough the voltage relaxes to the interspike voltage (ms)
AHP_RECOVERY_MS = 2.0


def _window_offsets(pre_ms: float, post_ms: float, dt_ms: float) -> np.ndarray:
    return np.arange(-int(round(pre_ms / dt_ms)), int(round(post_ms / dt_ms)) + 1) * dt_ms


def ap_waveform(traces_mV: np.ndarray, spikes_ms: list[np.ndarray], dt_ms: float, pre_ms: float,
                post_ms: float) -> np.ndarray | None:
    """Average action potential (mV) at offsets −pre … +post ms (step dt) from the exact crossing time.

    Averaged over every spike of the traces whose window lies inside its trace and does not
    reach the next or previous spike's window; None if there is no such spike.
    """
    offs = _window_offsets(pre_ms, post_ms, dt_ms)
    t_end = (traces_mV.shape[1] - 1) * dt_ms
    acc, n = np.zeros(offs.size), 0
    for v, st in zip(traces_mV, spikes_ms):
        grid = np.arange(v.size) * dt_ms
        gaps = np.diff(np.concatenate([[-np.inf], st, [np.inf]]))
        for k, t in enumerate(st):
            if t - pre_ms < 0 or t + post_ms > t_end or min(gaps[k], gaps[k + 1]) < pre_ms + post_ms:
                continue
            acc += np.interp(t + offs, grid, v)
            n += 1
    return acc / n if n else None


def ahp_trough_ms(traces_mV: np.ndarray, spikes_ms: list[np.ndarray], dt_ms: float, pre_ms: float,
                  max_post_ms: float = 3.0) -> float:
    """Time (ms) after the crossing of the fast-AHP trough of the average action potential (≥ 0.3 ms)."""
    wave = ap_waveform(traces_mV, spikes_ms, dt_ms, pre_ms, max_post_ms)
    if wave is None:
        raise ValueError("no isolated action potentials in the training traces: an event surrogate needs "
                         "spiking data")
    offs = _window_offsets(pre_ms, max_post_ms, dt_ms)
    after = offs >= 0.3
    return float(offs[after][np.argmin(wave[after])])


def refractory_samples(v_mV: np.ndarray, quantile: float = 0.001) -> int | None:
    """The shortest interspike interval (samples) of (N, T) traces, as their `quantile` (robust to a
    stray doublet); None if no trace has two spikes."""
    rows, cols = upward_crossings(v_mV)
    isi = np.concatenate([np.diff(cols[rows == r]) for r in np.unique(rows)] or [np.zeros(0)])
    return None if isi.size == 0 else max(1, int(np.floor(np.quantile(isi, quantile))))


def bridged_voltage(v_mV: np.ndarray, spikes_ms: np.ndarray, dt_ms: float, pre_ms: float,
                    post_ms: float) -> np.ndarray:
    """The trace with each window [t_k − pre, t_k + post] replaced by the straight line across it."""
    v = np.array(v_mV, dtype=np.float64, copy=True)
    t_end = (v.size - 1) * dt_ms
    for t in spikes_ms:
        a, b = max(t - pre_ms, 0.0), min(t + post_ms, t_end)
        lo, hi = int(np.floor(a / dt_ms)) + 1, int(np.ceil(b / dt_ms))  # samples strictly inside (a, b)
        if hi <= lo:
            continue
        va, vb = np.interp([a, b], np.arange(v.size) * dt_ms, v_mV) if lo < 2 or hi > v.size - 2 else (
            _lerp(v_mV, a / dt_ms), _lerp(v_mV, b / dt_ms))
        tt = np.arange(lo, hi) * dt_ms
        v[lo:hi] = va + (tt - a) * (vb - va) / max(b - a, 1e-12)
    return v


def _lerp(v: np.ndarray, pos: float) -> float:
    i = int(np.floor(pos))
    return float(v[i] + (pos - i) * (v[i + 1] - v[i]))


def coarsen(x: np.ndarray, factor: int) -> np.ndarray:
    """Box mean over groups of `factor` samples along the last axis (the last group padded with its edge)."""
    x = np.asarray(x)
    if factor == 1:
        return x
    n = -(-x.shape[-1] // factor)
    pad = n * factor - x.shape[-1]
    xp = np.concatenate([x, np.repeat(x[..., -1:], pad, axis=-1)], axis=-1) if pad else x
    return xp.reshape(*x.shape[:-1], n, factor).mean(axis=-1)


def coarse_times_ms(n_coarse: int, dt_ms: float, factor: int) -> np.ndarray:
    """Time (ms) of each coarse sample: the centre of its group of `factor` data samples."""
    return (np.arange(n_coarse) * factor + 0.5 * (factor - 1)) * dt_ms


def phase_target(spikes_ms: np.ndarray, t_ms: np.ndarray, onset_ms: float) -> np.ndarray:
    """θ(t) (spikes): 0 until `onset_ms`, k at the k-th spike, linear in between, after the last
    spike rising at the last interspike rate to N + 1/2 and staying there."""
    st = np.asarray(spikes_ms, dtype=np.float64)
    if st.size == 0:
        return np.zeros(t_ms.shape)
    onset = min(onset_ms, st[0] - 1e-6)
    knots_t = np.concatenate([[onset], st])
    knots_k = np.arange(st.size + 1, dtype=np.float64)
    theta = np.interp(t_ms, knots_t, knots_k, left=0.0)
    last_isi = knots_t[-1] - knots_t[-2]
    after = t_ms > st[-1]
    theta[after] = st.size + np.minimum(PHASE_TAIL, (t_ms[after] - st[-1]) / last_isi)
    return theta


def spikes_from_phase(theta: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
    """Spike times (ms): where the least-squares monotone fit of θ (isotonic regression) reaches 1, 2, …,
    interpolated linearly between samples.

    A network's θ wiggles; its running maximum keeps every upward wiggle, so a trace whose θ ends
    near N + ½ (the target) often decoded N + 1 spikes and subthreshold traces fired. The monotone
    fit averages the wiggles out instead (the 0.2.0 checkpoint, same weights, held-out amplitudes:
    spike-count error 17.6 → 15.4 %, firing mismatches 5.5 → 2.0 %; unseen models 45.5 → 40.6 %),
    and is θ itself wherever θ is already monotone.
    """
    from scipy.optimize import isotonic_regression

    theta = np.asarray(theta, dtype=np.float64)
    m = isotonic_regression(theta).x if theta.size else theta
    n = int(np.floor(m[-1] + 1e-9)) if m.size else 0
    if n < 1:
        return np.zeros(0)
    ks = np.arange(1, n + 1, dtype=np.float64)
    j = np.searchsorted(m, ks - 1e-9, side="left")  # first sample with m >= k (m is non-decreasing)
    j = np.clip(j, 1, m.size - 1)
    m0, m1 = m[j - 1], m[j]
    frac = np.where(m1 > m0, (ks - m0) / np.where(m1 > m0, m1 - m0, 1.0), 1.0)
    return t_ms[j - 1] + np.clip(frac, 0.0, 1.0) * (t_ms[j] - t_ms[j - 1])


def interpolated_spike_times(amp_nA: float, amps_nA: np.ndarray, spikes_ms: list[np.ndarray]) -> np.ndarray:
    """Spike times (ms) at `amp_nA` from those at the two nearest of `amps_nA` (one on each side where there is):
    the k-th spike interpolated linearly in amplitude, the count rounded from theirs; spikes only the longer
    train has keep its intervals after the last interpolated one."""
    amps = np.asarray(amps_nA, dtype=float)
    below, above = np.flatnonzero(amps <= amp_nA), np.flatnonzero(amps >= amp_nA)
    if below.size == 0 or above.size == 0:
        return np.asarray(spikes_ms[int(np.argmin(np.abs(amps - amp_nA)))], dtype=float)
    i = below[np.argmax(amps[below])]
    j = above[np.argmin(amps[above])]
    w = 0.0 if amps[j] == amps[i] else (amp_nA - amps[i]) / (amps[j] - amps[i])
    a, b = np.asarray(spikes_ms[i], dtype=float), np.asarray(spikes_ms[j], dtype=float)
    n = int(round((1.0 - w) * a.size + w * b.size))
    common = min(a.size, b.size)
    mixed = (1.0 - w) * a[:common] + w * b[:common]
    longer = a if a.size > b.size else b
    # spikes only the longer train has keep its intervals, continuing from the last interpolated spike
    shift = mixed[-1] - longer[common - 1] if common else 0.0
    return np.concatenate([mixed, longer[common:] + shift])[:n]


def nearest_weights(points: np.ndarray, model_points: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(indices (B, k) into model_points (M, F), weights (B, k) summing to 1): the `k` training models nearest to
    each feature point (B, F) in scaled space, inverse-square-distance weighted (a model's own point: itself)."""
    d = np.linalg.norm(points[:, None, :] - model_points[None, :, :], axis=-1)
    k = min(k, model_points.shape[0])
    near = np.argsort(d, axis=1)[:, :k]
    w = 1.0 / np.maximum(np.take_along_axis(d, near, axis=1), 1e-9) ** 2
    return near, w / w.sum(axis=1, keepdims=True)


def blend_templates(points: np.ndarray, model_points: np.ndarray, templates: np.ndarray, k: int = 3) -> np.ndarray:
    """(B, n) action potentials for feature points (B, F) in scaled space: inverse-distance blend of
    the `k` nearest training models' templates (`nearest_weights`; a training model's own point gives its own)."""
    near, w = nearest_weights(points, model_points, k)
    return np.einsum("bk,bkn->bn", w, templates[near])


def compose_traces(v_between_coarse: np.ndarray, spikes_ms: list[np.ndarray], templates_mV: np.ndarray,
                   pre_ms: float, dt_ms: float, factor: int, n_samples: int,
                   recovery_ms: float = AHP_RECOVERY_MS) -> np.ndarray:
    """(B, n_samples) voltages (mV) on the data grid from the coarse interspike voltage (B, Lc), spike
    times per item (ms) and one action-potential template per item (B, n), starting at −pre_ms
    (`paste_action_potentials` on the interspike voltage interpolated to the data grid)."""
    grid = np.arange(n_samples) * dt_ms
    tc = coarse_times_ms(v_between_coarse.shape[1], dt_ms, factor)
    fine = np.stack([np.interp(grid, tc, row) for row in v_between_coarse])
    return paste_action_potentials(fine, spikes_ms, templates_mV, pre_ms, dt_ms, recovery_ms)


def paste_action_potentials(v_between_mV: np.ndarray, spikes_ms: list[np.ndarray], templates_mV: np.ndarray,
                            pre_ms: float, dt_ms: float, recovery_ms: float = AHP_RECOVERY_MS) -> np.ndarray:
    """(B, L) voltages (mV): the interspike voltage (B, L) on the data grid with one action-potential template
    per item (B, n, from −pre_ms) pasted at each spike time (ms).

    Each template is pasted whole from its crossing to its fast-AHP trough (so AP shape and AHP
    depth are the model's own); before the crossing it is offset to join the interspike voltage,
    and after the trough the voltage relaxes to the interspike voltage with time constant
    `recovery_ms` (for 8 time constants, or until the next spike's window begins)."""
    b, n_samples = v_between_mV.shape
    grid = np.arange(n_samples) * dt_ms
    out = np.array(v_between_mV, dtype=np.float32, copy=True)
    offs = (np.arange(templates_mV.shape[1]) * dt_ms) - pre_ms
    post_ms = offs[-1]
    tail_ms = 8 * recovery_ms
    for i in range(b):
        spikes = np.sort(np.asarray(spikes_ms[i], dtype=np.float64))
        if spikes.size == 0:
            continue
        v = np.asarray(v_between_mV[i], dtype=np.float64)
        tmpl = templates_mV[i]
        start_gap = np.interp(spikes - pre_ms, grid, v) - tmpl[0]
        end_gap = tmpl[-1] - np.interp(spikes + post_ms, grid, v)
        # each sample belongs to the last spike whose window has begun; a window or tail ends where the next begins
        k = np.searchsorted(spikes - pre_ms, grid - 1e-9, side="right") - 1
        mine = k >= 0
        s = np.where(mine, grid - spikes[np.maximum(k, 0)], -np.inf)
        window = mine & (s <= post_ms + 1e-9)
        sw, kw = s[window], k[window]
        out[i, window] = np.interp(sw, offs, tmpl) + np.where(sw < 0, (-sw / pre_ms) * start_gap[kw], 0.0)
        tail = mine & (s > post_ms + 1e-9) & (s <= post_ms + tail_ms)
        out[i, tail] = v[tail] + end_gap[k[tail]] * np.exp(-(s[tail] - post_ms) / recovery_ms)
    return out


class StreamComposer:
    """The streaming (network-mode) decoder: pastes action potentials into successive chunks of voltage.

    ``templates_mV`` (B, n): each cell's own action potential from ``pre_samples`` before its
    −20 mV crossing (as `ap_waveform`). A model step is ``factor`` data samples; a spike fired
    in a step is placed with its crossing at data sample ``crossing_offset`` of the step (1 …
    factor: the step's centre), its rising phase inside the step. Where a template is being
    pasted the voltage is the larger of it and the clipped voltage below (the model's own AHP
    takes over as the template falls under the clip level). Stateful: an action potential
    fired at the end of one chunk continues into the next.
    """

    def __init__(self, templates_mV: np.ndarray, pre_samples: int, factor: int) -> None:
        self.templates = np.asarray(templates_mV, dtype=np.float64)
        if self.templates.ndim != 2 or self.templates.shape[1] <= pre_samples:
            raise ValueError(f"templates must be (cells, > {pre_samples} samples), got {self.templates.shape}")
        self.factor = int(factor)
        self.crossing_offset = self.factor // 2 + 1
        first = max(1, self.crossing_offset - int(pre_samples))  # the step's sample where pasting starts
        self._start_q = first - 1  # 0-based within the step
        self._start_index = int(pre_samples) - (self.crossing_offset - first)  # template sample pasted there
        self.pos = np.full(self.templates.shape[0], self.templates.shape[1], dtype=np.int64)  # n = not pasting

    def paste(self, v_mV: np.ndarray, fire: np.ndarray) -> np.ndarray:
        """(B, steps·factor) clipped voltages + (B, steps) fired-in-step flags → voltages with spikes (mV)."""
        v = np.array(v_mV, dtype=np.float64, copy=True)
        n_t = self.templates.shape[1]
        rows = np.arange(v.shape[0])
        for j in range(v.shape[1]):
            step, q = divmod(j, self.factor)
            if q == self._start_q:
                self.pos[fire[:, step]] = self._start_index
            on = self.pos < n_t
            if on.any():
                v[on, j] = np.maximum(v[on, j], self.templates[rows[on], self.pos[on]])
                self.pos[on] += 1
        return v
