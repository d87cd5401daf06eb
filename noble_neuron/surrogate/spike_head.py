"""Spike head of a sliding-window surrogate: spikes as events, not as a regressed waveform.

A regression of the somatic voltage on its input blurs action potentials whose exact time
the model is unsure of into a bump that never crosses threshold (a network-mode surrogate
trained that way fired 0 Hz where its detailed twin fired 8.5 Hz). A spike-head model
(``SurrogateConfig.spike_head``) has two outputs per sample, as in Beniaguev et al. (2021):

- the voltage clipped at ``v_clip_mV`` (subthreshold dynamics, AHP included), scored by the
  relative Lp loss like any voltage;
- the logit of "a spike's upstroke crosses ``SPIKE_THRESHOLD_MV`` within ``half_width``
  samples of this one" (``SurrogateConfig.spike_label_half_width``), scored by binary
  cross-entropy against labels that are 1 there; a tolerance of ~0.5 ms lets the model be
  confident where it knows a spike comes but not to the sample.

At run time (`SpikeComposer`) a spike is detected where the probability rises through the
checkpoint's calibrated threshold, outside a refractory period (the shortest interspike
interval of the training traces, `refractory_samples`: a probability that dips and recovers
within one action potential would otherwise count twice); it is placed
``delay_samples`` later (the rise comes about ``half_width`` samples before the crossing it
announces; the delay is calibrated with the threshold), and the voltage there is the clipped
prediction with the model family's average action potential (`ap_template`, stored in the
checkpoint) pasted on from that sample, so NetCons watching the soma see an ordinary spike.
"""
from __future__ import annotations

import numpy as np

from ..features.spikes import upward_crossings
from ..validation import is_int

__all__ = ["REFRACTORY_MS", "SpikeComposer", "ap_template", "refractory_samples",
           "spike_labels"]

#: no second spike within this time (ms) of a spike, unless the checkpoint has its own (data-derived) value
REFRACTORY_MS = 1.5



def spike_labels(v_mV: np.ndarray, half_width: int) -> np.ndarray:
    """(B, W) float32 labels: 1 within `half_width` samples of each upward crossing, else 0."""
    v = np.asarray(v_mV)
    out = np.zeros(v.shape, dtype=np.float32)
    rows, cols = upward_crossings(v)
    for d in range(-half_width, half_width + 1):
        c = cols + d
        ok = (c >= 0) & (c < v.shape[1])
        out[rows[ok], c[ok]] = 1.0
    return out


def ap_template(v_mV: np.ndarray, v_clip_mV: float, max_samples: int = 40) -> np.ndarray:
    """Average action potential (mV) from its crossing sample until the average falls below ``v_clip_mV``.

    Averaged sample by sample over every crossing of the (N, T) traces that has ``max_samples``
    samples after it; raises if there is none (a spike head needs spiking training data).
    """
    v = np.asarray(v_mV, dtype=np.float64)
    rows, cols = upward_crossings(v)
    ok = cols + max_samples <= v.shape[1]
    rows, cols = rows[ok], cols[ok]
    if rows.size == 0:
        raise ValueError("no action potentials in the training traces: a spike-head surrogate needs spiking data")
    mean = v[rows[:, None], cols[:, None] + np.arange(max_samples)[None, :]].mean(axis=0)
    below = np.flatnonzero(mean < v_clip_mV)
    return mean[:below[0]] if below.size else mean


def refractory_samples(v_mV: np.ndarray, quantile: float = 0.001) -> int | None:
    """The shortest interspike interval (samples) of (N, T) traces, as their `quantile` (robust to a
    stray doublet); None if no trace has two spikes."""
    rows, cols = upward_crossings(v_mV)
    isi = np.concatenate([np.diff(cols[rows == r]) for r in np.unique(rows)] or [np.zeros(0)])
    return None if isi.size == 0 else max(1, int(np.floor(np.quantile(isi, quantile))))


class SpikeComposer:
    """Turns successive chunks of (clipped voltage, spike probability) of B cells into voltages with spikes.

    Stateful across calls (epochs): the probability's last value, time since the last spike
    and the rest of a template still to paste carry over, so a spike found at the end of
    one epoch continues into the next.
    """

    def __init__(self, n_cells: int, template_mV: np.ndarray, threshold: float, dt_ms: float,
                 delay_samples: int = 0, refractory: int | None = None) -> None:
        self.template = np.asarray(template_mV, dtype=np.float32)
        if self.template.ndim != 1 or self.template.size == 0:
            raise ValueError("the spike template must be a non-empty 1-D waveform (mV)")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"spike probability threshold must be in (0, 1), got {threshold!r}")
        self.threshold = float(threshold)
        self.refractory = int(round(REFRACTORY_MS / dt_ms)) if refractory is None else int(refractory)
        if not is_int(delay_samples) or not (
                0 <= delay_samples < self.refractory):
            raise ValueError(f"spike delay must be an integer in [0, {self.refractory}) samples, got {delay_samples!r}")
        self.delay = int(delay_samples)
        self.last_p = np.zeros(n_cells, dtype=np.float32)
        self.since = np.full(n_cells, 10**9, dtype=np.int64)  # samples since each cell's last spike (< 0: due)
        self.spike_samples: list[list[int]] = [[] for _ in range(n_cells)]
        self._t = 0  # samples composed so far

    def step(self, v_clip_mV: np.ndarray, p_spike: np.ndarray) -> np.ndarray:
        """(B, n) voltages (mV) for the next n samples of each cell."""
        v = np.array(v_clip_mV, dtype=np.float32, copy=True)
        p = np.asarray(p_spike, dtype=np.float32)
        n_tmpl = self.template.size
        for j in range(v.shape[1]):  # vectorised over cells, sample by sample
            self.since += 1
            fire = ((p[:, j] >= self.threshold) & (self.last_p < self.threshold)
                    & (self.since > self.refractory - self.delay))
            for i in np.flatnonzero(fire):
                self.spike_samples[i].append(self._t + j + self.delay)
            self.since[fire] = -self.delay
            self.last_p = p[:, j].copy()
            on = (self.since >= 0) & (self.since < n_tmpl)
            if on.any():
                v[on, j] = np.maximum(v[on, j], self.template[self.since[on]])
        self._t += v.shape[1]
        return v
