"""Electrophysiological features of Long Square voltage traces.

NOBLE conditions its neural operator on two features per neuron model: the
threshold current ``I_thr`` (smallest step amplitude, nA, that elicits spiking)
and ``s_thr``, the local slope of the FI curve at ``I_thr`` (Hz/nA).  Both are
derived here from simulated traces, plus a set of eFEL features used to judge
whether surrogate traces are physiologically faithful.  Numpy (and eFEL) only:
no simulator import, so features can be recomputed on stored traces anywhere.
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from ..constants import SPIKE_THRESHOLD_MV
from .spikes import as_trace, check_dt, count_spikes, spike_times  # noqa: F401 (part of this module's API)
from ..validation import is_int

__all__ = [
    "count_spikes",
    "spike_times",
    "FICurve",
    "fi_curve",
    "threshold_current",
    "threshold_slope",
    "rate_at",
    "RATE_MULTIPLES_OF_I_THR",
    "EFEL_FEATURES",
    "SUBTHRESHOLD_EFEL_FEATURES",
    "efel_features",
    "input_resistance_MOhm",
    "model_features",
]

logger = logging.getLogger(__name__)

#: eFEL 5.x feature names computed by default.  ``spike_count`` is eFEL 5's name for
#: the deprecated ``Spikecount`` (same value).  ``steady_state_voltage`` is eFEL's
#: mean voltage *after* the stimulus; ``steady_state_voltage_stimend`` is the one
#: at the end of the step (the value that enters the input resistance).
EFEL_FEATURES: tuple[str, ...] = (
    "spike_count",
    "mean_frequency",
    "mean_AP_amplitude",
    "AP1_width",
    "AHP_depth",
    "time_to_first_spike",
    "ISI_CV",
    "voltage_base",
    "steady_state_voltage",
    "steady_state_voltage_stimend",
    "sag_amplitude",
    "ohmic_input_resistance_vb_ssse",
)

#: Features that describe the passive/hyperpolarised response; ``model_features``
#: evaluates them on the most negative step rather than on a spiking trace.
SUBTHRESHOLD_EFEL_FEATURES: frozenset[str] = frozenset(
    {
        "voltage_base",
        "steady_state_voltage",
        "steady_state_voltage_stimend",
        "sag_amplitude",
        "ohmic_input_resistance_vb_ssse",
    }
)

# eFEL returns arrays; these names are already means (one value) by definition.
# Every other per-spike feature is reduced to its first element (first AP).
_MEAN_FEATURES: frozenset[str] = frozenset({"mean_AP_amplitude", "mean_frequency"})


# --------------------------------------------------------------------------- FI curve
@dataclass(frozen=True, eq=False)
class FICurve:
    """Firing rate (Hz) versus step amplitude (nA), sorted by amplitude.

    Amplitudes must be unique: average repeated amplitudes first (``fi_curve``
    does that), so that thresholds and slopes are well defined.
    """

    amps_nA: np.ndarray
    rates_Hz: np.ndarray

    def __post_init__(self) -> None:
        a = np.asarray(self.amps_nA, dtype=float)
        r = np.asarray(self.rates_Hz, dtype=float)
        if a.ndim != 1 or r.ndim != 1:
            raise ValueError(f"amps_nA and rates_Hz must be 1-D, got shapes {a.shape} and {r.shape}")
        if a.size != r.size:
            raise ValueError(f"amps_nA ({a.size}) and rates_Hz ({r.size}) must have the same length")
        if a.size == 0:
            raise ValueError("FICurve needs at least one amplitude; simulate a non-empty amplitude grid")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(r))):
            raise ValueError("amps_nA and rates_Hz must be finite; drop failed simulations first")
        if np.any(r < 0):
            raise ValueError("rates_Hz must be >= 0 (they are spike counts per second)")
        order = np.argsort(a, kind="stable")
        a, r = a[order], r[order]
        if np.any(np.diff(a) == 0):
            raise ValueError("amps_nA contains duplicates; average repeats first (fi_curve does this)")
        a.setflags(write=False)
        r.setflags(write=False)
        object.__setattr__(self, "amps_nA", a)
        object.__setattr__(self, "rates_Hz", r)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FICurve):
            return NotImplemented
        return bool(np.array_equal(self.amps_nA, other.amps_nA) and np.array_equal(self.rates_Hz, other.rates_Hz))

    __hash__ = None  # type: ignore[assignment]  # arrays: value equality, not hashable


def fi_curve(
    amps_nA: Sequence[float] | np.ndarray,
    voltages_mV: np.ndarray | Sequence[np.ndarray],
    dt_ms: float,
    stim_start_ms: float = 15.0,
    stim_dur_ms: float = 400.0,
    threshold_mV: float = SPIKE_THRESHOLD_MV,
) -> FICurve:
    """FI curve: spikes during the step divided by the step duration (s).

    Only spikes in ``[stim_start_ms, stim_start_ms + stim_dur_ms)`` count, so
    rebound spikes after a hyperpolarising step do not register as firing.
    Repeated amplitudes are averaged.
    """
    amps = np.asarray(amps_nA, dtype=float)
    if amps.ndim != 1:
        raise ValueError(f"amps_nA must be 1-D, got shape {amps.shape}")
    if not np.all(np.isfinite(amps)):
        raise ValueError("amps_nA must be finite")
    if isinstance(voltages_mV, np.ndarray) and voltages_mV.ndim != 2:
        raise ValueError(f"voltages_mV must be (n_traces, n_samples), got shape {voltages_mV.shape}")
    traces = list(voltages_mV)
    if len(traces) != amps.size:
        raise ValueError(f"got {amps.size} amplitudes but {len(traces)} traces; pass one trace per amplitude")
    if not stim_dur_ms > 0:
        raise ValueError(f"stim_dur_ms must be > 0, got {stim_dur_ms!r}")
    window = (float(stim_start_ms), float(stim_start_ms) + float(stim_dur_ms))
    dur_s = float(stim_dur_ms) / 1000.0
    rates = np.array(
        [count_spikes(v, dt_ms, threshold_mV, window_ms=window) / dur_s for v in traces], dtype=float
    )
    uniq, inverse = np.unique(amps, return_inverse=True)
    mean_rates = np.bincount(inverse, weights=rates) / np.bincount(inverse)
    return FICurve(uniq, mean_rates)


def threshold_current(fi: FICurve, min_rate_Hz: float = 0.0) -> float:
    """Threshold current ``I_thr`` (nA): smallest tested amplitude with rate > ``min_rate_Hz``.

    With the default ``min_rate_Hz=0`` this is the first amplitude giving >= 1 spike
    during the step.  The result is only as fine as the amplitude grid: the true
    threshold lies in ``(previous grid amp, I_thr]``.  No bisection is done here;
    a caller that needs more precision should simulate a finer grid around it.
    """
    if not isinstance(fi, FICurve):
        raise TypeError(f"fi must be an FICurve (see fi_curve), got {type(fi).__name__}")
    firing = np.flatnonzero(fi.rates_Hz > float(min_rate_Hz))
    if firing.size == 0:
        raise ValueError(
            f"model never fires in the tested range [{fi.amps_nA[0]:g}, {fi.amps_nA[-1]:g}] nA "
            f"(rate > {min_rate_Hz:g} Hz); extend the amplitude grid"
        )
    if firing[0] == 0:
        logger.warning(
            "lowest tested amplitude %g nA already fires; I_thr is only an upper bound - extend the grid downwards",
            fi.amps_nA[0],
        )
    return float(fi.amps_nA[firing[0]])


def rate_at(fi: FICurve, amp_nA: float) -> float | None:
    """Firing rate (Hz) at `amp_nA`, linearly interpolated on the FI curve; None outside the tested range."""
    if not isinstance(fi, FICurve):
        raise TypeError(f"fi must be an FICurve (see fi_curve), got {type(fi).__name__}")
    if not fi.amps_nA[0] <= amp_nA <= fi.amps_nA[-1]:
        return None
    return float(np.interp(amp_nA, fi.amps_nA, fi.rates_Hz))


#: FI-curve points far above threshold, as multiples of I_thr: (I_thr, s_thr) fix the curve's start,
#: these its course where PV cells are driven (a surrogate feature set may embed them).
RATE_MULTIPLES_OF_I_THR: tuple[int, ...] = (2, 3)


def threshold_slope(fi: FICurve, i_thr_nA: float | None = None, n_points: int = 3,
                    window_nA: float | None = None) -> float:
    """Local FI slope at threshold ``s_thr`` (Hz/nA).

    NOBLE defines ``s_thr`` as "the local slope of the FI curve at I_thr".  Here it
    is the least-squares slope of rate vs amplitude over the *firing* amplitudes at or
    above ``I_thr`` (the step from 0 Hz to the first firing rate is excluded: it
    reflects grid spacing, not the gain): the first ``n_points`` of them, or, with
    ``window_nA``, all of them within [I_thr, I_thr + window_nA] (at least n_points).
    A window makes the feature continuous for cells that fire a few spikes just above
    threshold, where 2.5 Hz rate steps quantise a 3-point slope.  Needs >= 2 points.
    """
    if not isinstance(fi, FICurve):
        raise TypeError(f"fi must be an FICurve (see fi_curve), got {type(fi).__name__}")
    if not is_int(n_points) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2 (a slope needs two points), got {n_points!r}")
    i_thr = threshold_current(fi) if i_thr_nA is None else float(i_thr_nA)
    tol = 1e-12 * max(1.0, abs(i_thr))
    firing = np.flatnonzero((fi.amps_nA >= i_thr - tol) & (fi.rates_Hz > 0))
    sel = firing[: int(n_points)]
    if window_nA is not None:
        if not (math.isfinite(window_nA) and window_nA > 0):
            raise ValueError(f"window_nA must be a positive number of nA, got {window_nA!r}")
        in_window = firing[fi.amps_nA[firing] <= i_thr + window_nA + tol]
        sel = in_window if in_window.size > sel.size else sel
    if sel.size < 2:
        raise ValueError(
            f"only {sel.size} firing amplitude(s) at or above I_thr={i_thr:g} nA; the FI slope needs >= 2 - "
            "add amplitudes above threshold to the grid"
        )
    x, y = fi.amps_nA[sel], fi.rates_Hz[sel]
    xc = x - x.mean()
    return float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))


# --------------------------------------------------------------------------- eFEL
@contextlib.contextmanager
def _efel_settings(**settings: float) -> Iterator[object]:
    """Temporarily apply eFEL global settings, restoring the previous values after."""
    import efel

    current = efel.get_settings()
    saved = {k: getattr(current, k) for k in settings}
    try:
        for k, val in settings.items():
            efel.set_setting(k, val)
        yield efel
    finally:
        for k, val in saved.items():
            efel.set_setting(k, val)


def _reduce(name: str, values: object) -> float:
    if values is None:
        return float("nan")
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        return float("nan")
    val = float(np.mean(arr)) if name in _MEAN_FEATURES else float(arr[0])
    return val if math.isfinite(val) else float("nan")


def efel_features(
    v_mV: np.ndarray,
    dt_ms: float,
    stim_start_ms: float = 15.0,
    stim_end_ms: float = 415.0,
    amp_nA: float | None = None,
    names: Sequence[str] = EFEL_FEATURES,
    threshold_mV: float = SPIKE_THRESHOLD_MV,
) -> dict[str, float]:
    """eFEL features of one trace, one float each (NaN where eFEL cannot compute).

    Per-spike features are reduced to the first spike (e.g. ``AHP_depth`` of the
    first AP); ``mean_*`` features are means by definition.  ``amp_nA`` is passed
    per trace as eFEL's ``stimulus_current`` (needed by input-resistance features).
    The spike threshold is set to ``threshold_mV`` (SPIKE_THRESHOLD_MV, as in count_spikes)
    only for the duration of the call.
    """
    v = as_trace(v_mV)
    dt = check_dt(dt_ms)
    if not stim_end_ms > stim_start_ms:
        raise ValueError(f"stim_end_ms ({stim_end_ms}) must exceed stim_start_ms ({stim_start_ms})")
    names = list(names)
    import efel

    known = set(efel.get_feature_names())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown eFEL feature(s) {unknown}; check efel.get_feature_names() for eFEL {efel.__version__}")
    trace = {
        "T": np.arange(v.size) * dt,
        "V": v,
        "stim_start": [float(stim_start_ms)],
        "stim_end": [float(stim_end_ms)],
    }
    if amp_nA is not None:
        trace["stimulus_current"] = [float(amp_nA)]
    out: dict[str, float] = {}
    with _efel_settings(Threshold=float(threshold_mV)):
        try:
            raw = efel.get_feature_values([trace], names, raise_warnings=False)[0]
        except Exception as exc:  # one failing feature should not sink the others
            logger.debug("eFEL batch failed (%s); retrying feature by feature", exc)
            raw = {}
            for n in names:
                try:
                    raw[n] = efel.get_feature_values([trace], [n], raise_warnings=False)[0][n]
                except Exception as exc_n:
                    logger.debug("eFEL feature %s failed: %s", n, exc_n)
                    raw[n] = None
    for n in names:
        out[n] = _reduce(n, raw.get(n))
    return out


def input_resistance_MOhm(
    v_mV: np.ndarray,
    dt_ms: float,
    amp_nA: float,
    stim_start_ms: float = 15.0,
    stim_dur_ms: float = 400.0,
    steady_frac: float = 0.1,
) -> float:
    """Input resistance (MOhm = mV/nA) as ΔV_steady / I.

    Baseline is the mean voltage before the step; steady state is the mean over the
    last ``steady_frac`` of the step.  Use a small negative step so active currents
    (and spikes) do not contaminate the passive response.
    """
    v = as_trace(v_mV)
    dt = check_dt(dt_ms)
    if amp_nA == 0 or not math.isfinite(amp_nA):
        raise ValueError(f"amp_nA must be finite and non-zero to define ΔV/I, got {amp_nA!r}")
    i0 = int(round(stim_start_ms / dt))
    i1 = int(round((stim_start_ms + stim_dur_ms) / dt))
    n_ss = max(1, int(round(steady_frac * stim_dur_ms / dt)))
    if i0 < 1 or i1 > v.size or i1 - n_ss <= i0:
        raise ValueError(
            f"trace of {v.size * dt:g} ms does not contain a baseline and the step "
            f"[{stim_start_ms}, {stim_start_ms + stim_dur_ms}] ms; check stim timing and dt_ms"
        )
    return float((v[i1 - n_ss:i1].mean() - v[:i0].mean()) / amp_nA)


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def model_features(
    amps_nA: Sequence[float] | np.ndarray,
    voltages_mV: np.ndarray | Sequence[np.ndarray],
    dt_ms: float,
    stim_start_ms: float = 15.0,
    stim_dur_ms: float = 400.0,
    threshold_mV: float = SPIKE_THRESHOLD_MV,
    n_slope_points: int = 3,
    slope_window_nA: float | None = 0.1,
    ref_factor: float = 1.5,
    efel_names: Sequence[str] = EFEL_FEATURES,
) -> dict:
    """All features of ONE model from its set of Long Square traces.

    Returns a flat, strictly JSON-safe dict: ``fi_amps_nA``/``fi_rates_Hz`` (lists),
    ``I_thr_nA``, ``s_thr_Hz_per_nA``, ``rate_at_{k}x_I_thr_Hz`` (FI curve interpolated at
    k × I_thr, None above the tested range), ``input_resistance_MOhm`` (smallest-magnitude
    negative step), and ``efel.<name>`` values.  Subthreshold eFEL features
    (:data:`SUBTHRESHOLD_EFEL_FEATURES`) come from the most negative step
    (``efel_hyperpol_amp_nA``); spiking ones from the first amplitude >= ref_factor *
    I_thr, else the largest amplitude (``efel_ref_amp_nA``).  Values that cannot be
    computed are ``None`` (not NaN, which strict JSON forbids).  Raises ValueError
    if the model never fires or fires at fewer than 2 amplitudes.
    """
    amps = np.asarray(amps_nA, dtype=float)
    traces = list(voltages_mV)
    fi = fi_curve(amps, traces, dt_ms, stim_start_ms, stim_dur_ms, threshold_mV)
    i_thr = threshold_current(fi)
    s_thr = threshold_slope(fi, i_thr, n_points=n_slope_points, window_nA=slope_window_nA)
    stim_end_ms = stim_start_ms + stim_dur_ms

    out: dict = {
        "fi_amps_nA": [float(a) for a in fi.amps_nA],
        "fi_rates_Hz": [float(r) for r in fi.rates_Hz],
        "I_thr_nA": i_thr,
        "s_thr_Hz_per_nA": s_thr,
        **{f"rate_at_{k}x_I_thr_Hz": rate_at(fi, k * i_thr) for k in RATE_MULTIPLES_OF_I_THR},
    }

    neg = np.flatnonzero(amps < 0)
    if neg.size:
        a_small = amps[neg].max()
        rins = [input_resistance_MOhm(traces[i], dt_ms, a_small, stim_start_ms, stim_dur_ms)
                for i in neg if amps[i] == a_small]
        out["input_resistance_MOhm"] = _finite_or_none(float(np.mean(rins)))
        i_hyp = int(neg[np.argmin(amps[neg])])
        out["efel_hyperpol_amp_nA"] = float(amps[i_hyp])
    else:
        logger.warning("no negative step in the amplitude grid; input resistance and sag are undefined")
        out["input_resistance_MOhm"] = None
        i_hyp = None
        out["efel_hyperpol_amp_nA"] = None

    target = i_thr + (ref_factor - 1.0) * abs(i_thr)
    above = np.flatnonzero(amps >= target - 1e-12)
    i_ref = int(above[np.argmin(amps[above])]) if above.size else int(np.argmax(amps))
    out["efel_ref_amp_nA"] = float(amps[i_ref])

    names = list(efel_names)
    sub = [n for n in names if n in SUBTHRESHOLD_EFEL_FEATURES]
    sup = [n for n in names if n not in SUBTHRESHOLD_EFEL_FEATURES]
    vals: dict[str, float] = {}
    if sup:
        vals.update(efel_features(traces[i_ref], dt_ms, stim_start_ms, stim_end_ms,
                                  float(amps[i_ref]), sup, threshold_mV))
    if sub:
        if i_hyp is not None:
            vals.update(efel_features(traces[i_hyp], dt_ms, stim_start_ms, stim_end_ms,
                                      float(amps[i_hyp]), sub, threshold_mV))
        else:
            vals.update({n: float("nan") for n in sub})
    for n in names:
        out[f"efel.{n}"] = _finite_or_none(vals[n])
    return out
