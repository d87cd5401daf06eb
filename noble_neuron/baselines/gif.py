"""The GIF baseline: a generalized integrate-and-fire neuron fitted the standard way (Pozzorini et al. 2015).

    C dV/dt = -g_L (V - E_L) + I(t) - sum_k eta_k E_k(t)          (nA; eta outward positive)
    V_T(t)  = V_T* + sum_k gamma_k E_k(t),    E_k(t) = sum_spikes exp(-(t - t_spike) / tau_k)
    a spike where V reaches V_T(t) (deterministic; the fitted escape rate is exp((V - V_T)/dV) per ms),
    then V = V_reset for t_ref.

Fitted on a detailed cell's soma voltage under fluctuating (OU) currents, in Pozzorini's two steps:
(1) C, g_L, E_L and the spike-triggered current eta by linear regression of dV/dt on V, I and the spike
history, spikes cut out; V_reset the mean voltage t_ref after a spike; (2) the moving threshold V_T*, gamma
and dV by maximum likelihood of the recorded spike times under the escape rate, on the voltage of the fitted
subthreshold model with the recorded spikes imposed (a concave problem: Newton's method). Both kernels are
sums of exponentials on `TAUS_MS`, so the same model runs as one NMODL mechanism (mod/nn_GIF.mod,
`noble_neuron.neuron.gif_cell.GIFCell`). Units: mV, nA, uS, nF, ms.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..features.spike_metrics import coincidence_gamma, subthreshold_rmse_mV
from ..features.spikes import spike_times_at
from ..recordings.json_file import read_json, write_json
from .adex import SPIKE_TOP_MV  # a spike is drawn there for one sample: the -20 mV detectors find it

__all__ = ["SPIKE_TOP_MV", "GIFParams", "SHIPPED_GIF_FITS", "TAUS_MS", "T_REF_MS", "fit_gif", "fit_subthreshold_gif",
           "fit_threshold_gif", "load_gif_fits", "save_gif_fits", "score_gif", "simulate_gif"]

#: time constants (ms) of the spike-triggered current and threshold kernels: the AHP (3 ms) to slow adaptation
TAUS_MS = (3.0, 10.0, 30.0, 100.0, 300.0)
#: absolute refractory period (ms): V is held at V_reset this long after a spike (a PV cell's AP and fast AHP)
T_REF_MS = 2.0
#: samples this long before a spike are left out of the subthreshold regression (the upswing is not linear)
UPSWING_MS = 2.0
SHIPPED_GIF_FITS = Path(__file__).with_name("pv_family_gif.json")


@dataclass(frozen=True)
class GIFParams:
    """One fitted GIF neuron (units in the field names)."""

    C_nF: float
    gl_uS: float
    el_mV: float
    v_reset_mV: float
    vt_star_mV: float
    dv_mV: float
    eta_nA: tuple[float, ...]
    gamma_mV: tuple[float, ...]
    taus_ms: tuple[float, ...] = TAUS_MS
    t_ref_ms: float = T_REF_MS

    def __post_init__(self) -> None:
        if not (len(self.eta_nA) == len(self.gamma_mV) == len(self.taus_ms)) or len(self.taus_ms) > len(TAUS_MS):
            raise ValueError(f"eta_nA ({len(self.eta_nA)}), gamma_mV ({len(self.gamma_mV)}) and taus_ms "
                             f"({len(self.taus_ms)}) need one value per kernel mode, at most {len(TAUS_MS)}")
        values = (self.C_nF, self.gl_uS, self.el_mV, self.v_reset_mV, self.vt_star_mV, self.dv_mV, self.t_ref_ms,
                  *self.eta_nA, *self.gamma_mV, *self.taus_ms)
        if not all(math.isfinite(x) for x in values):
            raise ValueError(f"GIF parameters must be finite numbers, got {self}")
        if self.C_nF <= 0 or self.gl_uS <= 0 or self.dv_mV <= 0 or self.t_ref_ms < 0 or min(self.taus_ms) <= 0:
            raise ValueError(f"a GIF needs C_nF, gl_uS, dv_mV, taus_ms > 0 and t_ref_ms >= 0; got C {self.C_nF}, "
                             f"gl {self.gl_uS}, dv {self.dv_mV}, taus {self.taus_ms}, t_ref {self.t_ref_ms}")

    @property
    def tau_m_ms(self) -> float:
        return self.C_nF / self.gl_uS

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in ("eta_nA", "gamma_mV", "taus_ms"):
            d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GIFParams":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown GIF keys {sorted(unknown)}; expected {sorted(cls.__dataclass_fields__)}")
        d = dict(d)
        for name in ("eta_nA", "gamma_mV", "taus_ms"):
            if name in d:
                d[name] = tuple(float(x) for x in d[name])
        return cls(**d)


def _kernel_states(spike_idx: np.ndarray, n: int, dt_ms: float, taus_ms: Sequence[float]) -> np.ndarray:
    """(n, K): sum over spikes of exp(-(t - t_spike)/tau_k), from each spike's own sample on."""
    from scipy.signal import lfilter

    train = np.zeros(n)
    np.add.at(train, spike_idx, 1.0)
    return np.column_stack([lfilter([1.0], [1.0, -math.exp(-dt_ms / tau)], train) for tau in taus_ms])


def _refractory_mask(spike_idx: np.ndarray, n: int, before: int, after: int) -> np.ndarray:
    """True on samples `before` samples ahead of a spike to `after` samples past it."""
    mask = np.zeros(n + 1, int)
    np.add.at(mask, np.clip(spike_idx - before, 0, n), 1)
    np.add.at(mask, np.clip(spike_idx + after + 1, 0, n), -1)
    return np.cumsum(mask)[:n] > 0


def _spike_samples(v_mV: np.ndarray, dt_ms: float) -> np.ndarray:
    t = np.arange(v_mV.size) * dt_ms
    return np.unique(np.round(spike_times_at(t, v_mV) / dt_ms).astype(int))


def fit_subthreshold_gif(v_mV: np.ndarray, current_nA: np.ndarray, dt_ms: float,
                         taus_ms: Sequence[float] = TAUS_MS, t_ref_ms: float = T_REF_MS,
                         starts: Sequence[int] = ()) -> dict:
    """Step 1: C, g_L, E_L, eta and V_reset from a recorded voltage and its injected current (same samples).

    `starts`: where further recordings begin in concatenated samples (no dV/dt is taken across them).
    """
    v, i = np.asarray(v_mV, float), np.asarray(current_nA, float)
    if v.shape != i.shape or v.ndim != 1 or v.size < 1000:
        raise ValueError(f"v_mV and current_nA must be 1-D, of one length and >= 1000 samples; "
                         f"got {v.shape}, {i.shape}")
    spikes = _spike_samples(v, dt_ms)
    ref = int(round(t_ref_ms / dt_ms))
    if spikes.size < 5:
        raise ValueError(f"only {spikes.size} spikes: a GIF fit needs a current that makes the cell fire (>= 5 spikes)")
    states = _kernel_states(spikes, v.size, dt_ms, taus_ms)
    keep = ~_refractory_mask(spikes, v.size, int(round(UPSWING_MS / dt_ms)), ref)
    keep[-1] = False
    keep[np.asarray(starts, int) - 1] = False  # the last sample of each recording but the last
    dvdt = np.r_[np.diff(v) / dt_ms, 0.0]
    a = np.column_stack([np.ones_like(v), v, i, -states])[keep]
    w = np.linalg.lstsq(a, dvdt[keep], rcond=None)[0]
    if not w[2] > 0 or not w[1] < 0:
        raise ValueError("the subthreshold regression gave a non-positive capacitance or leak: the current and the "
                         "voltage do not belong together (check their units: nA and mV)")
    c = 1.0 / w[2]
    gl = -w[1] * c
    after = spikes[spikes + ref < v.size] + ref
    return {"C_nF": float(c), "gl_uS": float(gl), "el_mV": float(w[0] * c / gl),
            "eta_nA": tuple(float(x * c) for x in w[3:]), "v_reset_mV": float(np.mean(v[after])),
            "spikes": spikes}


def _membrane(sub: dict, current_nA: np.ndarray, dt_ms: float, taus_ms: Sequence[float], t_ref_ms: float,
              spikes: np.ndarray, starts: dict[int, float]) -> np.ndarray:
    """The subthreshold model's voltage with the recorded spikes imposed (backward Euler, as NEURON steps it);
    at each sample in `starts` it restarts from the recorded voltage given there."""
    eta = _kernel_states(spikes, current_nA.size, dt_ms, taus_ms) @ np.asarray(sub["eta_nA"])
    c, gl, el = sub["C_nF"], sub["gl_uS"], sub["el_mV"]
    drive = current_nA - eta + gl * el
    a = c / dt_ms
    v = np.empty(current_nA.size)
    ref = int(round(t_ref_ms / dt_ms))
    held = np.zeros(current_nA.size, bool)
    for s in spikes:
        held[s + 1:s + ref + 1] = True  # the spike's own sample keeps the voltage that reached threshold
    x = el
    for n in range(current_nA.size):
        if n in starts:
            x = starts[n]
        elif held[n]:
            x = sub["v_reset_mV"]
        else:
            x = (a * x + drive[n]) / (a + gl)
        v[n] = x
    return v


def fit_threshold_gif(v_model_mV: np.ndarray, spikes: np.ndarray, dt_ms: float, taus_ms: Sequence[float] = TAUS_MS,
                      t_ref_ms: float = T_REF_MS, iterations: int = 60) -> dict:
    """Step 2: V_T*, gamma and dV maximising the likelihood of `spikes` (sample indices) under the escape rate
    exp((V - V_T(t))/dV) per ms on the model voltage `v_model_mV`."""
    n = v_model_mV.size
    free = ~_refractory_mask(spikes, n, 0, int(round(t_ref_ms / dt_ms)))
    free[spikes] = True
    x = np.column_stack([v_model_mV, np.ones(n), _kernel_states(spikes, n, dt_ms, taus_ms)])
    # the spike's own sample belongs to the history only after it: the kernels start one sample late here
    x[:, 2:] = np.vstack([np.zeros((1, len(taus_ms))), x[:-1, 2:]])
    xs, xf = x[spikes], x[free]
    theta = np.zeros(x.shape[1])
    theta[0] = 1.0 / 2.0
    theta[1] = -np.median(v_model_mV[spikes]) * theta[0]

    def loglik(th: np.ndarray) -> float:
        return float(np.sum(xs @ th) - dt_ms * np.sum(np.exp(np.minimum(xf @ th, 50.0))))

    ll = loglik(theta)
    for _ in range(iterations):
        lam = np.exp(np.minimum(xf @ theta, 50.0))
        grad = xs.sum(0) - dt_ms * (lam @ xf)
        hess = -dt_ms * (xf * lam[:, None]).T @ xf
        step = np.linalg.solve(hess - 1e-9 * np.eye(theta.size), -grad)
        for _ in range(30):
            new = loglik(theta + step)
            if new >= ll:
                break
            step = step / 2
        if new < ll or abs(new - ll) < 1e-6:
            break
        theta, ll = theta + step, new
    if not theta[0] > 0:
        raise ValueError("the threshold fit found no voltage dependence of firing: too few spikes or a flat voltage")
    dv = 1.0 / theta[0]
    return {"dv_mV": float(dv), "vt_star_mV": float(-theta[1] * dv),
            "gamma_mV": tuple(float(-g * dv) for g in theta[2:]), "loglik": ll}


def fit_gif(traces: Sequence[tuple[np.ndarray, np.ndarray]], dt_ms: float, taus_ms: Sequence[float] = TAUS_MS,
            t_ref_ms: float = T_REF_MS) -> GIFParams:
    """Fit a GIF to (voltage mV, current nA) recordings of one cell (each at `dt_ms`), concatenated for the fit."""
    if not traces:
        raise ValueError("give at least one (voltage, current) recording")
    v = np.concatenate([np.asarray(tr[0], float) for tr in traces])
    i = np.concatenate([np.asarray(tr[1], float) for tr in traces])
    starts = np.cumsum([len(tr[0]) for tr in traces])[:-1]
    sub = fit_subthreshold_gif(v, i, dt_ms, taus_ms, t_ref_ms, starts)
    restart = {0: float(v[0]), **{int(k): float(v[k]) for k in starts}}
    v_model = _membrane(sub, i, dt_ms, taus_ms, t_ref_ms, sub["spikes"], restart)
    thr = fit_threshold_gif(v_model, sub["spikes"], dt_ms, taus_ms, t_ref_ms)
    return GIFParams(C_nF=sub["C_nF"], gl_uS=sub["gl_uS"], el_mV=sub["el_mV"], v_reset_mV=sub["v_reset_mV"],
                     vt_star_mV=thr["vt_star_mV"], dv_mV=thr["dv_mV"], eta_nA=sub["eta_nA"],
                     gamma_mV=thr["gamma_mV"], taus_ms=tuple(taus_ms), t_ref_ms=t_ref_ms)


def simulate_gif(p: GIFParams, current_nA: np.ndarray, dt_ms: float, v0_mV: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic GIF (a spike where V reaches V_T(t)) under `current_nA`: (voltage mV, spike times ms).

    Backward Euler for V and exact decay for the kernels, as NEURON's fixed step integrates mod/nn_GIF.mod; the
    spike's own sample is drawn at `SPIKE_TOP_MV` (as the mechanism draws it), so spike detectors see it.
    """
    i = np.asarray(current_nA, float)
    decay = np.exp(-dt_ms / np.asarray(p.taus_ms))
    eta_amp, gamma_amp = np.asarray(p.eta_nA), np.asarray(p.gamma_mV)
    e = np.zeros(decay.size)
    g = np.zeros(decay.size)
    a = p.C_nF / dt_ms
    x = p.el_mV if v0_mV is None else float(v0_mV)
    held_until = -1.0
    v = np.empty(i.size)
    spikes = []
    for n in range(i.size):
        t = n * dt_ms
        e *= decay
        g *= decay
        if t < held_until:
            x = p.v_reset_mV
        else:
            x = (a * x + i[n] - e.sum() + p.gl_uS * p.el_mV) / (a + p.gl_uS)
            if x >= p.vt_star_mV + g.sum():
                spikes.append(t)
                e += eta_amp
                g += gamma_amp
                held_until = t + p.t_ref_ms
                x = p.v_reset_mV
                v[n] = SPIKE_TOP_MV
                continue
        v[n] = x
    return v, np.asarray(spikes)


def score_gif(p: GIFParams, v_mV: np.ndarray, current_nA: np.ndarray, dt_ms: float, skip_ms: float = 0.0) -> dict:
    """A fit's deterministic prediction of one recording: Γ (±2 ms), rates, subthreshold RMSE (spikes cut out)."""
    v_gif, s_gif = simulate_gif(p, current_nA, dt_ms, v0_mV=float(v_mV[0]))
    t = np.arange(v_mV.size) * dt_ms
    s_ref = spike_times_at(t, v_mV)
    s_ref, s_gif = s_ref[s_ref >= skip_ms], s_gif[s_gif >= skip_ms]
    duration = t[-1] - skip_ms
    keep = t >= skip_ms
    return {"gamma_2ms": float(coincidence_gamma(s_ref, s_gif, 2.0, duration)),
            "rate_Hz_detailed": 1000.0 * s_ref.size / duration, "rate_Hz_gif": 1000.0 * s_gif.size / duration,
            "subthreshold_rmse_mV": float(subthreshold_rmse_mV(t[keep], v_mV[keep], v_gif[keep], [s_ref, s_gif]))}


def save_gif_fits(fits: dict[str, GIFParams], path: str | Path, provenance: dict | None = None) -> Path:
    """Write {model_id: GIFParams} (and how they were fitted) as JSON, whole or not at all."""
    payload = {"description": "GIF baseline fits (noble_neuron.baselines.gif)", **(provenance or {}),
               "fits": {m: p.to_dict() for m, p in sorted(fits.items())}}
    return write_json(path, payload, indent=1)


def load_gif_fits(path: str | Path = SHIPPED_GIF_FITS) -> dict[str, GIFParams]:
    """Fitted GIFs by model id (the shipped family's by default)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; fit GIFs with `noble-neuron fit-gif --out {path}`")
    data = read_json(path, "noble-neuron fit-gif")
    try:
        return {m: GIFParams.from_dict(d) for m, d in data["fits"].items()}
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a GIF fits file (noble-neuron fit-gif writes one): {err}") from None
