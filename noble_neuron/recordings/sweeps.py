"""One cell's current-clamp step sweeps, as plain data: what a recording or a NEURON run of a detailed model gives.

A `StepSweeps` holds the amplitude (nA) of each sweep's rectangular current step, the steps' common onset and
duration (ms), the spike times (ms from the sweep's start) and, where recorded, the voltage (mV) on one time grid.
Readers (`recordings.readers`) turn NWB, neo-readable (ABF, ...) and table files into one; `recordings.measure`
measures a neuron's features on it the way a checkpoint measured its own.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = ["StepSweeps", "RecordedStep", "recorded_step", "AMPLITUDE_DECIMALS", "ONSET_TOLERANCE_MS"]

log = logging.getLogger(__name__)

#: step amplitudes read off a sampled stimulus are rounded to this many decimals of nA (0.1 pA)
AMPLITUDE_DECIMALS = 4
#: sweeps whose steps start or last differently by more than this (ms; or 2 samples) are not one protocol
ONSET_TOLERANCE_MS = 0.1
#: a recorded current's noise floor: levels closer than this many noise s.d. (or 1 fA) are one level
NOISE_SDS = 8.0
#: a test pulse is a stretch off the holding level before the step, at most this fraction of the step's length
MAX_PULSE_FRACTION = 0.2


class RecordedStep(NamedTuple):
    """One sweep's step as its recorded current shows it: amplitude above the holding level (nA; 0: no step),
    onset and duration (ms), the holding level (nA) and where a test pulse before the step ended (ms; 0: none)."""

    amp_nA: float
    onset_ms: float
    dur_ms: float
    holding_nA: float
    pulse_end_ms: float


def recorded_step(current_nA: np.ndarray, dt_ms: float) -> RecordedStep | None:
    """The step of one recorded current (L,) nA, or None where it is not one rectangular step. The holding level
    is the current's level at the end of the sweep; samples within `NOISE_SDS` noise s.d. of a level (noise from
    the sample-to-sample differences, robustly) belong to it. Besides the step (the longest stretch off the
    holding level) only a short test pulse before it is allowed (`MAX_PULSE_FRACTION` of the step)."""
    x = np.asarray(current_nA, dtype=np.float64)
    d = np.diff(x)
    sigma = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2.0)
    tol = max(1e-6, NOISE_SDS * sigma)
    tail = x[-max(3, x.size // 50):]
    holding = float(np.median(tail))
    off = np.abs(x - holding) > tol
    if not off.any():
        return RecordedStep(0.0, 0.0, 0.0, holding, 0.0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], off.astype(np.int8), [0]])))
    runs = list(zip(edges[0::2], edges[1::2]))  # [start, end) of each stretch off the holding level
    lengths = np.array([b - a for a, b in runs])
    a, b = runs[int(np.argmax(lengths))]
    level = x[a:b]
    if np.ptp(level) > 2 * tol + 1e-3 * abs(float(np.median(level)) - holding):
        return None  # not flat: a ramp, a chirp, noise on a step far above the floor
    others = [(ra, rb) for ra, rb in runs if (ra, rb) != (a, b)]
    if any(rb > a or (rb - ra) > MAX_PULSE_FRACTION * (b - a) for ra, rb in others):
        return None  # another step after it, or a long one before it: a multi-step protocol
    pulse_end = max((rb for _, rb in others), default=0) * dt_ms
    holding = float(np.median(x[~off]))  # every sample at the holding level, not the tail alone
    return RecordedStep(float(np.median(level)) - holding, float(a * dt_ms), float((b - a) * dt_ms), holding,
                        float(pulse_end))


@dataclass
class StepSweeps:
    """Step sweeps of one cell. ``amps_nA`` (N,) the step amplitudes (0: a sweep without current);
    ``delay_ms``/``dur_ms`` the steps' onset and duration; ``spikes_ms`` per sweep, from the sweep's start;
    ``dt_ms`` and ``voltage_mV`` (N, L) where the voltage was recorded (None: spike times only)."""

    amps_nA: np.ndarray
    delay_ms: float
    dur_ms: float
    spikes_ms: list = field(default_factory=list)
    dt_ms: float | None = None
    voltage_mV: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        where = f" ({self.source})" if self.source else ""
        self.amps_nA = np.asarray(self.amps_nA, dtype=np.float64)
        if self.amps_nA.ndim != 1 or self.amps_nA.size == 0 or not np.isfinite(self.amps_nA).all():
            raise ValueError(f"step sweeps{where} need a 1-D array of finite step amplitudes (nA), got "
                             f"shape {self.amps_nA.shape}")
        if not (np.isfinite(self.delay_ms) and self.delay_ms >= 0 and np.isfinite(self.dur_ms) and self.dur_ms > 0):
            raise ValueError(f"step sweeps{where} need a step onset >= 0 ms and a duration > 0 ms, got "
                             f"{self.delay_ms!r} and {self.dur_ms!r}")
        if len(self.spikes_ms) != self.amps_nA.size:
            raise ValueError(f"step sweeps{where}: {self.amps_nA.size} amplitudes but {len(self.spikes_ms)} spike-"
                             "time lists; give one list (possibly empty) per sweep")
        spikes = []
        for t in self.spikes_ms:
            t = np.sort(np.asarray(t, dtype=np.float64).ravel())
            if t.size and (not np.isfinite(t).all() or t[0] < 0):
                raise ValueError(f"spike times{where} must be finite ms from the sweep's start (>= 0)")
            spikes.append(t)
        self.spikes_ms = spikes
        if self.voltage_mV is not None:
            v = np.asarray(self.voltage_mV, dtype=np.float64)
            if v.ndim != 2 or v.shape[0] != self.amps_nA.size:
                raise ValueError(f"voltage{where} must be (sweeps, samples) = ({self.amps_nA.size}, L) mV, got "
                                 f"shape {v.shape}")
            if self.dt_ms is None or not (np.isfinite(self.dt_ms) and self.dt_ms > 0):
                raise ValueError(f"voltage{where} needs its sampling interval dt_ms > 0")
            if (self.delay_ms + self.dur_ms) > v.shape[1] * self.dt_ms + 1e-9:
                raise ValueError(f"the step{where} ends at {self.delay_ms + self.dur_ms:g} ms, after the recorded "
                                 f"{v.shape[1] * self.dt_ms:g} ms")
            if not np.isfinite(v).all():
                raise ValueError(f"voltage{where} contains NaN/inf; drop or repair those sweeps first")
            self.voltage_mV = v

    @property
    def n_sweeps(self) -> int:
        return int(self.amps_nA.size)

    @property
    def has_voltage(self) -> bool:
        return self.voltage_mV is not None

    @classmethod
    def from_traces(cls, stim_nA: np.ndarray, voltage_mV: np.ndarray, dt_ms: float, source: str = "") -> "StepSweeps":
        """Sweeps from their recorded currents and voltages (N, L) on one grid (`dt_ms`). Each current is read
        as a rig records it (`recorded_step`): a holding level (subtracted), noise, and at most a short test pulse
        before one rectangular step. Sweeps that are not one step (ramps, chirps, multi-step protocols) and
        steps shorter than the longest (short squares) are left out with a warning naming them; steps of the
        longest duration starting at different times are refused. With a
        test pulse, every sweep is cut to start halfway between its end and the step. Spikes are the voltage's
        upward threshold crossings (`features.spikes.spike_times`)."""
        from ..features.spikes import spike_times

        where = f" in {source}" if source else ""
        stim, volt = np.atleast_2d(np.asarray(stim_nA, float)), np.atleast_2d(np.asarray(voltage_mV, float))
        if stim.shape != volt.shape:
            raise ValueError(f"stimulus{where} is {stim.shape} but voltage {volt.shape}: each sweep needs its current "
                             "and voltage on the same samples (resample one of them first)")
        steps = [recorded_step(x, dt_ms) for x in stim]
        bad = [i for i, st in enumerate(steps) if st is None]
        if len(bad) == len(steps):
            raise ValueError(f"no sweep{where} is one rectangular current step (ramps, chirps and multi-step "
                             "protocols are not step sweeps); give the Long Square sweeps")
        if bad:
            warnings.warn(f"sweeps {bad[:8]}{where} are not one rectangular current step: left out", stacklevel=2)
        keep = [i for i, st in enumerate(steps) if st is not None]
        typical = np.median([steps[i].dur_ms for i in keep if steps[i].amp_nA != 0.0] or [0.0])
        onset_typical = np.median([steps[i].onset_ms for i in keep if steps[i].dur_ms >= typical * MAX_PULSE_FRACTION]
                                  or [0.0])
        for i in keep:  # a sweep without a step whose test pulse alone stands off the holding level
            st = steps[i]
            if st.amp_nA != 0.0 and st.dur_ms < MAX_PULSE_FRACTION * typical and \
                    st.onset_ms + st.dur_ms <= onset_typical:
                steps[i] = RecordedStep(0.0, 0.0, 0.0, st.holding_nA, st.onset_ms + st.dur_ms)
        found = [steps[i] for i in keep if steps[i].amp_nA != 0.0]
        if not found:
            raise ValueError(f"no sweep{where} has a current step: all stimuli are flat (was the stimulus recorded "
                             "in the file's units?)")
        tol = max(ONSET_TOLERANCE_MS, 2 * dt_ms)
        longest = max(f.dur_ms for f in found)
        other = [i for i in keep if steps[i].amp_nA != 0.0 and steps[i].dur_ms < longest - tol]
        if other:  # e.g. an Allen file's short squares beside its long squares: the longest steps are measured
            warnings.warn(f"sweeps {other[:8]}{where} step for less than the longest steps ({longest:g} ms): left out",
                          stacklevel=2)
            keep = [i for i in keep if i not in set(other)]
            found = [steps[i] for i in keep if steps[i].amp_nA != 0.0]
        onsets, durs = np.array([f.onset_ms for f in found]), np.array([f.dur_ms for f in found])
        if np.ptp(onsets) > tol or np.ptp(durs) > tol:
            raise ValueError(f"the steps{where} start at {onsets.min():g}–{onsets.max():g} ms and last "
                             f"{durs.min():g}–{durs.max():g} ms; one set of sweeps must share one step timing "
                             "(split the file by protocol)")
        onset = float(np.median(onsets))
        pulse_end = max(steps[i].pulse_end_ms for i in keep)
        start = int(round(0.5 * (pulse_end + onset) / dt_ms)) if pulse_end > 0 else 0
        volt = volt[keep, start:]
        # stimuli are stored in float32 by most rigs and files: amplitudes to 0.1 pA, as protocols set them
        return cls(np.round([steps[i].amp_nA for i in keep], AMPLITUDE_DECIMALS), onset - start * dt_ms,
                   float(np.median(durs)), [spike_times(v, dt_ms) for v in volt], float(dt_ms), volt, source)

    def stimulus_nA(self, dt_ms: float | None = None, n_samples: int | None = None) -> np.ndarray:
        """(N, L) the sweeps' currents (nA) on the grid `dt_ms` (default the recording's) of `n_samples`."""
        dt = self.dt_ms if dt_ms is None else dt_ms
        if dt is None:
            raise ValueError("spike-time sweeps have no time grid; pass dt_ms and n_samples")
        n = self.voltage_mV.shape[1] if n_samples is None and self.voltage_mV is not None else n_samples
        if n is None:
            raise ValueError("pass n_samples for sweeps without voltage")
        t = np.arange(int(n)) * dt
        on = (t >= self.delay_ms - 1e-9) & (t < self.delay_ms + self.dur_ms - 1e-9)
        return self.amps_nA[:, None] * on[None, :]

    def resampled(self, dt_ms: float, total_ms: float | None = None) -> "StepSweeps":
        """The voltage linearly interpolated onto a grid of `dt_ms` (ms), `total_ms` long (default: as recorded;
        a recording shorter than `total_ms` raises). Spike times are kept as detected on the recorded grid."""
        if self.voltage_mV is None:
            raise ValueError("spike-time sweeps have no voltage to resample")
        recorded_ms = self.voltage_mV.shape[1] * self.dt_ms
        total = recorded_ms if total_ms is None else float(total_ms)
        if total > recorded_ms + self.dt_ms + 1e-9:
            raise ValueError(f"the sweeps{' of ' + self.source if self.source else ''} are {recorded_ms:g} ms long, "
                             f"{total:g} ms are needed")
        t_old = np.arange(self.voltage_mV.shape[1]) * self.dt_ms
        t_new = np.arange(int(round(total / dt_ms))) * dt_ms
        v = np.stack([np.interp(t_new, t_old, row) for row in self.voltage_mV])
        return StepSweeps(self.amps_nA, self.delay_ms, self.dur_ms, self.spikes_ms, float(dt_ms), v, self.source)

    def distinct(self) -> "StepSweeps":
        """One sweep per amplitude (within 0.1 pA): the first of repeats (logged; trial-to-trial spread is not
        averaged into one train)."""
        keys = np.round(self.amps_nA, AMPLITUDE_DECIMALS)
        _, first = np.unique(keys, return_index=True)
        if first.size < self.n_sweeps:
            log.info("%s: %d repeated sweeps dropped (the first of each amplitude kept)", self.source or "sweeps",
                     self.n_sweeps - first.size)
        keep = np.sort(first)
        return StepSweeps(self.amps_nA[keep], self.delay_ms, self.dur_ms, [self.spikes_ms[i] for i in keep],
                          self.dt_ms, None if self.voltage_mV is None else self.voltage_mV[keep], self.source)

    def trains(self):
        """The neuron's own `StepTrains` (spike times from the step's onset, during the step), one per amplitude
        (`surrogate.measured.recorded_trains`); repeats keep their first sweep."""
        from ..surrogate.measured import recorded_trains

        d = self.distinct()
        return recorded_trains(d.amps_nA, [t[t >= d.delay_ms] - d.delay_ms for t in d.spikes_ms], d.dur_ms)
