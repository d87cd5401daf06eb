"""When a model fires under a current step: its own spike trains at its training amplitudes, read at any
amplitude between them.

Under a step the k-th spike's latency and the k-th interval are smooth functions of the amplitude
wherever that spike exists, so the detailed model's own trains at the training amplitudes give the train
at any amplitude between them (`StepTrains.train`): the first latency and each later interval T by monotone
cubic (PCHIP) interpolation of T^-1.5 (a power of the rate, `INTERVAL_POWER`) over the training amplitudes where
that spike exists (linear beyond them); the count by PCHIP interpolation of the training counts, of the two
counts around it the one whose last spike still falls within the step; between the last silent and the first
firing training amplitude the rheobase is taken at their midpoint (the latency diverges there, so it cannot
decide). On the 50 training models of pv_draws48.h5 at their held-out amplitudes (`python
benchmarks/accuracy.py`): Γ(±1 ms) median 1.00 where the spike-phase network gives 0.27 and the two-neighbour
linear interpolation 0.74; docs/surrogate.md has the variants compared.
Cells given by features blend their nearest training models' trains (`blend_trains`); the learned spike phase
remains the answer for any other current.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = ["StepTrains", "blend_trains", "fit_step_trains", "single_step"]

#: a current is a single step when it equals its amplitude within this (nA) wherever it is on
STEP_TOLERANCE_NA = 1e-6
#: spikes closer than this (ms) in an interpolated train are one spike
MIN_INTERVAL_MS = 0.5
#: latencies and intervals T (ms) are interpolated in amplitude as T^-INTERVAL_POWER, a power of the rate: near
#: rheobase a type-I cell's rate grows as √(I − I_rh) (power 2 makes that linear). Chosen by leave-one-out over the
#: training draws of pv_draws48.h5 (each interior one predicted from the others): spike-count error 3.42 / 3.18 /
#: 3.06 / 3.31 / 3.82 % for powers 1 / 1.25 / 1.5 / 2 / 2.5, Γ(±1 ms) mean 0.75 / 0.76 / 0.77 / 0.78 / 0.77
INTERVAL_POWER = 1.5


@dataclass
class StepTrains:
    """Spike trains (ms from step onset, spikes during the step only) at training step amplitudes (nA)."""

    dur_ms: float  # the training steps' duration
    amps_nA: np.ndarray  # (A,) ascending, distinct
    counts: np.ndarray  # (A,) spikes of each train
    times_ms: np.ndarray  # (counts.sum(),) the trains one after another, from onset

    def __post_init__(self) -> None:
        self.amps_nA = np.asarray(self.amps_nA, dtype=np.float64)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        self.times_ms = np.asarray(self.times_ms, dtype=np.float64)
        if self.amps_nA.ndim != 1 or self.amps_nA.size < 2 or self.counts.shape != self.amps_nA.shape:
            raise ValueError("step trains need >= 2 amplitudes and one count per amplitude")
        if np.any(np.diff(self.amps_nA) <= 0) or np.any(self.counts < 0) or self.counts.sum() != self.times_ms.size:
            raise ValueError("step trains are inconsistent (amplitudes not ascending, or counts do not match the "
                             "times); refit them with `noble-neuron fit-backbone`")
        if not (np.isfinite(self.amps_nA).all() and np.isfinite(self.times_ms).all() and self.dur_ms > 0):
            raise ValueError("step trains contain NaN/inf; the checkpoint is corrupt")
        starts = np.concatenate([[0], np.cumsum(self.counts)])
        trains = [self.times_ms[a:b] for a, b in zip(starts[:-1], starts[1:])]
        self._count = PchipInterpolator(self.amps_nA, self.counts.astype(float))
        self._first_latency_ms = np.array([t[0] if t.size else np.inf for t in trains])
        # the first latency and each later interval as T^-INTERVAL_POWER (A, K), NaN where the train has no such spike
        width = max(1, int(self.counts.max()))
        steps = np.full((self.amps_nA.size, width), np.nan)
        for i, t in enumerate(trains):
            steps[i, :t.size] = _interval_rates(t)
        self._rates = PchipInterpolator(self.amps_nA, _filled(self.amps_nA, steps), axis=0)

    def covers(self, amp_nA: float, dur_ms: float) -> bool:
        """Whether a step of this amplitude (nA) and duration (ms) lies within the training steps."""
        return bool(self.amps_nA[0] <= amp_nA <= self.amps_nA[-1] and dur_ms <= self.dur_ms + 1e-9)

    def train(self, amp_nA: float, dur_ms: float) -> np.ndarray:
        """Spike times (ms from onset) during a step of `amp_nA` lasting `dur_ms` (≤ the training duration:
        the cell does not know yet when its current will end)."""
        if not self.covers(amp_nA, dur_ms):
            raise ValueError(f"a step of {amp_nA:g} nA for {dur_ms:g} ms is outside the training steps "
                             f"({self.amps_nA[0]:g}–{self.amps_nA[-1]:g} nA, ≤ {self.dur_ms:g} ms)")
        steps = _intervals(self._rates(amp_nA))
        times = np.cumsum(np.concatenate([steps[:1], np.maximum(steps[1:], MIN_INTERVAL_MS)]))
        count = max(0.0, float(self._count(amp_nA)))
        if abs(count - round(count)) < 1e-6:  # at a training amplitude (to float precision): its own count
            count = float(round(count))
        # of the two counts around the interpolated one, that whose last spike still falls within the step
        n = int(np.clip((times < self.dur_ms).sum(), np.floor(count), np.ceil(count)))
        i = int(np.clip(np.searchsorted(self.amps_nA, amp_nA), 1, self.amps_nA.size - 1))
        if self.counts[i - 1] == 0 and self.counts[i] > 0:  # the rheobase lies between: at the midpoint
            n = 0 if amp_nA < 0.5 * (self.amps_nA[i - 1] + self.amps_nA[i]) else max(n, 1)
            if n and times[0] >= self.dur_ms:  # it fires, so no later than the latency of the first firing draw
                times = times - times[0] + self._first_latency_ms[i]
        elif count < 1.0:
            n = int(round(count))
        out = times[:n]
        return out[out < dur_ms]

    def to_json(self) -> dict:
        return {"dur_ms": self.dur_ms, "amps_nA": self.amps_nA.tolist(), "counts": self.counts.tolist(),
                "times_ms": np.round(self.times_ms, 4).tolist()}

    @classmethod
    def from_json(cls, entry: dict) -> "StepTrains":
        return cls(float(entry["dur_ms"]), np.asarray(entry["amps_nA"], float), np.asarray(entry["counts"], int),
                   np.asarray(entry["times_ms"], float))


def blend_trains(trains: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """One train (ms from onset) from several neurons' trains under the same relative drive, weighted (summing to 1):
    the count as the weighted mean, each latency or interval T as the weighted mean of T^-INTERVAL_POWER (a train
    shorter than the count continues at its last interval)."""
    w = np.asarray(weights, dtype=float)
    n = int(round(float(np.dot(w, [t.size for t in trains]))))
    if n == 0:
        return np.zeros(0)
    rate, total = np.zeros(n), np.zeros(n)
    for wi, t in zip(w, trains):
        if t.size == 0:
            continue
        steps = _interval_rates(t)
        rate += wi * np.concatenate([steps[:n], np.full(max(0, n - steps.size), steps[-1])])
        total += wi
    return np.cumsum(_intervals(rate / np.maximum(total, 1e-12)))


def _interval_rates(train_ms: np.ndarray) -> np.ndarray:
    """A train's first latency and later intervals T (ms, from onset) as T^-INTERVAL_POWER, the interpolated form."""
    return np.maximum(np.diff(train_ms, prepend=0.0), 1e-3) ** -INTERVAL_POWER


def _intervals(rates: np.ndarray) -> np.ndarray:
    """The latency and intervals T (ms) back from T^-INTERVAL_POWER (`_interval_rates`)."""
    return np.maximum(rates, 1e-12) ** (-1.0 / INTERVAL_POWER)


def _filled(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Columns of y (A, K) over x (A,) with their NaNs filled: linear between the amplitudes that have a value,
    linear from the two nearest beyond them (constant where only one has)."""
    out = y.copy()
    for k in range(y.shape[1]):
        have = np.flatnonzero(np.isfinite(y[:, k]))
        xs, ys = x[have], y[have, k]
        if have.size == 0:
            out[:, k] = 0.0
            continue
        if have.size == 1:
            out[:, k] = ys[0]
            continue
        inner = np.interp(x, xs, ys)
        lo = ys[0] + (x - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0])
        hi = ys[-1] + (x - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        out[:, k] = np.where(x < xs[0], lo, np.where(x > xs[-1], hi, np.where(np.isfinite(y[:, k]), y[:, k], inner)))
    return out


def single_step(stim_nA: np.ndarray, dt_ms: float,
                tol_nA: float = STEP_TOLERANCE_NA) -> tuple[float, float, float] | None:
    """(amplitude nA, onset ms, duration ms) of a current (L,) nA that is one rectangular step: zero (within
    `tol_nA`) except for one contiguous stretch whose values differ by at most `tol_nA`; else None."""
    on = np.abs(stim_nA) > tol_nA
    if not on.any():
        return None
    first, last = int(on.argmax()), int(on.size - on[::-1].argmax())
    if not on[first:last].all() or np.ptp(stim_nA[first:last]) > tol_nA:
        return None
    return float(stim_nA[first]), first * dt_ms, (last - first) * dt_ms


def fit_step_trains(stim_nA: np.ndarray, spikes_ms: list[np.ndarray], dt_ms: float) -> StepTrains | None:
    """A model's `StepTrains` from its training currents (N, L) nA and spike times (ms) per trace: the single
    steps of the most common duration (one train per amplitude; repeats averaged by spike index up to the
    shortest); None with fewer than 2 such amplitudes."""
    steps = [(i, s) for i, s in enumerate(single_step(x, dt_ms) for x in np.asarray(stim_nA)) if s is not None]
    if not steps:
        return None
    durs = np.round([s[2] for _, s in steps], 6)
    values, n = np.unique(durs, return_counts=True)
    dur = float(values[np.argmax(n)])
    by_amp: dict[float, list[np.ndarray]] = {}
    for (i, (amp, onset, d)), r in zip(steps, durs):
        if r == dur:
            st = np.asarray(spikes_ms[i], dtype=float) - onset
            by_amp.setdefault(round(amp, 9), []).append(st[(st >= 0) & (st < dur)])
    if len(by_amp) < 2:
        return None
    amps = np.array(sorted(by_amp))
    trains = []
    for a in amps:
        reps = by_amp[a]
        k = min(t.size for t in reps)
        trains.append(np.mean([t[:k] for t in reps], axis=0) if k else np.zeros(0))
    return StepTrains(dur, amps, np.array([t.size for t in trains]), np.concatenate(trains))
