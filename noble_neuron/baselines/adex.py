"""The reduced-model baseline: an adaptive exponential integrate-and-fire neuron (AdEx) fitted per model.

A learned surrogate is only worth using where it beats a good reduced model, so every network
figure is reported next to an AdEx fitted to the same detailed model. The fit follows the
literature's two stages, on the detailed cell's responses to fluctuating current:

1. **Subthreshold: the dynamic I–V curve** (Badel et al. 2008). With C dV/dt = I_inj − I_ion(V),
   the capacitance C is the within-voltage-bin regression slope of I_inj on dV/dt (at fixed V the
   ionic current is fixed), and I_ion(V) = ⟨I_inj − C dV/dt⟩ per bin, away from spikes. Fitting
   I_ion(V) = g_L (V − E_L) − g_L Δ_T exp((V − V_T)/Δ_T) gives g_L, E_L, V_T, Δ_T.
2. **Spiking: spike times by simulation** (as in Jolivet et al. 2008's competition): V_T, Δ_T and
   g_L are refined and the reset V_r, adaptation a, b, τ_w and refractory period chosen by a
   cross-entropy search that maximises the coincidence factor Γ (±2 ms) and matches the firing
   rate on the detailed cell's noise and step responses (its FI points).

`simulate_adex` is the numpy integrator the fit uses (vectorised over parameter sets); the NEURON
mechanism ``mod/nn_AdEx.mod`` (`noble_neuron.neuron.adex_cell.AdExCell`) integrates the same
equations. Units: mV, nA, uS, nF, ms.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..features.spike_metrics import coincidence_gamma
from ..features.spikes import spike_times_at

__all__ = ["AdExParams", "PEAK_DELTAS", "simulate_adex", "fit_subthreshold", "fit_spiking", "fit_adex",
           "save_fits", "load_fits", "SHIPPED_FITS", "matched_fraction", "spike_train_loss",
           "spike_onsets_mV"]

#: a spike is cut off (v reset) at V_T + PEAK_DELTAS·Δ_T: its upswing is committed there (the exponential current is
#: e^4 = 55 × Δ_T·g_L), and NEURON's backward Euler stays on the upswing for dt < τ_m·e^-4 (0.08 ms at τ_m 4.4 ms);
#: a cut-off at 0 mV makes backward Euler turn the upswing back at dt 0.025 ms (measured: 28 spikes for 56)
PEAK_DELTAS = 4.0
#: the fitted AdEx of every family model (``noble-neuron fit-adex``); see docs/network_mode.md for the command
SHIPPED_FITS = Path(__file__).with_name("pv_family_adex.json")
GAMMA_WINDOW_MS = 2.0
#: where NEURON's nn_AdEx draws a spike (v set there for an instant, then clamped to V_reset): visible in recordings,
#: found by the package's spike detector (−20 mV)
SPIKE_TOP_MV = 20.0
#: during the refractory period v is pulled to V_reset by this conductance (uS; g_ref in nn_AdEx.mod): it holds v
#: within (I − w)/g_ref of V_reset (0.3 mV at 0.3 nA) and still lets the drawn spike show at dt 0.025 ms
REFRACTORY_G_US = 1.0


@dataclass(frozen=True)
class AdExParams:
    """One AdEx neuron: C (nF), g_L (uS), E_L, V_T, Δ_T, V_reset, V_peak (mV), a (uS), b (nA), τ_w, t_ref (ms)."""

    C_nF: float
    gl_uS: float
    el_mV: float
    vt_mV: float
    delta_t_mV: float
    a_uS: float = 0.0
    b_nA: float = 0.0
    tau_w_ms: float = 100.0
    v_reset_mV: float = -60.0
    t_ref_ms: float = 0.5

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"AdExParams.{f.name} must be a finite number, got {value!r}")
        for name in ("C_nF", "gl_uS", "delta_t_mV", "tau_w_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"AdExParams.{name} must be > 0, got {getattr(self, name)!r}")
        if self.t_ref_ms < 0:
            raise ValueError(f"AdExParams.t_ref_ms must be >= 0, got {self.t_ref_ms!r}")
        if not self.v_reset_mV < self.v_peak_mV:
            raise ValueError(f"AdExParams: v_reset_mV ({self.v_reset_mV}) must be below the spike cut-off "
                             f"vt + {PEAK_DELTAS:g}·delta_t = {self.v_peak_mV:.1f} mV")

    @property
    def v_peak_mV(self) -> float:
        """Where a spike is cut off and v reset: V_T + PEAK_DELTAS·Δ_T (the upswing is then committed)."""
        return self.vt_mV + PEAK_DELTAS * self.delta_t_mV

    @property
    def tau_m_ms(self) -> float:
        return self.C_nF / self.gl_uS

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "AdExParams":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown AdEx parameters {unknown}; known: {sorted(names)}")
        return cls(**{k: float(v) for k, v in d.items()})


def _stack(params: Sequence[AdExParams]) -> dict[str, np.ndarray]:
    return {f.name: np.array([getattr(p, f.name) for p in params], dtype=float) for f in dataclasses.fields(AdExParams)}


def simulate_adex(params: AdExParams | Sequence[AdExParams], current_nA: np.ndarray, dt_ms: float, *,
                  v0_mV: np.ndarray | float | None = None, substeps: int = 2, record_v: bool = True
                  ) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """Integrate AdEx neurons driven by `current_nA` ((n, T) or (T,), sample k over (k·dt, (k+1)·dt]).

    One parameter set for all rows, or one per row. Forward Euler with `substeps` steps per sample
    (the adaptation current exactly exponential), the refractory clamp as in nn_AdEx.mod. Returns the voltage
    at every sample end ((n, T) mV, a sample holding a spike shows SPIKE_TOP_MV; None unless `record_v`) and
    each row's spike times (ms, where v reached the cut-off V_T + PEAK_DELTAS·Δ_T).
    """
    current = np.atleast_2d(np.asarray(current_nA, dtype=float))
    n, n_t = current.shape
    plist = [params] * n if isinstance(params, AdExParams) else list(params)
    if len(plist) != n:
        raise ValueError(f"{len(plist)} parameter sets for {n} current traces; give one set or one per trace")
    p = _stack(plist)
    p["v_peak_mV"] = p["vt_mV"] + PEAK_DELTAS * p["delta_t_mV"]
    h = dt_ms / int(substeps)
    v = p["el_mV"].copy() if v0_mV is None else np.broadcast_to(np.asarray(v0_mV, dtype=float), (n,)).copy()
    w = p["a_uS"] * (v - p["el_mV"])
    w_decay = np.exp(-h / p["tau_w_ms"])
    ref_decay = np.exp(-h * REFRACTORY_G_US / p["C_nF"])
    ref_left = np.zeros(n)
    out = np.empty((n, n_t)) if record_v else None
    spikes: list[list[float]] = [[] for _ in range(n)]
    dtg = p["gl_uS"] * p["delta_t_mV"]
    for k in range(n_t):
        i_k = current[:, k]
        peaked = np.zeros(n, dtype=bool)
        for s in range(int(substeps)):
            free = ref_left <= 0
            x = np.minimum((v - p["vt_mV"]) / p["delta_t_mV"], 10.0)  # the cap only keeps a huge jump finite
            dv = (-p["gl_uS"] * (v - p["el_mV"]) + dtg * np.exp(x) - w + i_k) / p["C_nF"]
            v_held = p["v_reset_mV"] + (i_k - w) / REFRACTORY_G_US  # the clamp's equilibrium (as in nn_AdEx.mod)
            v = np.where(free, v + h * dv, v_held + (v - v_held) * ref_decay)
            w_inf = p["a_uS"] * (v - p["el_mV"])
            w = w_inf + (w - w_inf) * w_decay
            ref_left -= h
            fired = free & (v >= p["v_peak_mV"])
            if fired.any():
                t_fire = k * dt_ms + (s + 1) * h
                for j in np.flatnonzero(fired):
                    spikes[j].append(t_fire)
                v = np.where(fired, SPIKE_TOP_MV, v)
                w = w + fired * p["b_nA"]
                ref_left = np.where(fired, p["t_ref_ms"], ref_left)
                peaked |= fired
        if out is not None:  # a sample with a spike shows its top (the clamp may have pulled v below −20 mV by its end)
            out[:, k] = np.where(peaked, SPIKE_TOP_MV, v)
    return out, [np.array(s) for s in spikes]


# ------------------------------------------------------------------------------------------------ stage 1
def _spike_mask(v_mV: np.ndarray, dt_ms: float, before_ms: float = 2.0, after_ms: float = 10.0) -> np.ndarray:
    """True on samples at least `before_ms` before and `after_ms` after every spike (crossing of −20 mV)."""
    keep = np.ones(v_mV.shape, dtype=bool)
    t = np.arange(v_mV.shape[-1]) * dt_ms
    for row in range(v_mV.shape[0]):
        for ts in spike_times_at(t, v_mV[row]):
            keep[row, max(0, int((ts - before_ms) / dt_ms)):int((ts + after_ms) / dt_ms) + 1] = False
    return keep


def spike_onsets_mV(v_mV: np.ndarray, dt_ms: float, slope_mV_per_ms: float = 10.0) -> np.ndarray:
    """The voltage at each spike's onset: the last sample before its −20 mV crossing with dV/dt below `slope`."""
    out = []
    for row in np.atleast_2d(v_mV):
        dvdt = np.gradient(row, dt_ms)
        for ts in spike_times_at(np.arange(row.size) * dt_ms, row):
            k = int(ts / dt_ms)
            while k > 0 and dvdt[k] >= slope_mV_per_ms:
                k -= 1
            out.append(row[k])
    return np.array(out)


def fit_subthreshold(v_mV: np.ndarray, current_nA: np.ndarray, dt_ms: float, *, rest_mV: float | None = None,
                     bin_mV: float = 1.0, min_samples: int = 200) -> AdExParams:
    """Stage 1: C and g_L from the dynamic I–V curve of fluctuating-current responses; E_L, V_T, Δ_T.

    `v_mV`, `current_nA`: (n, T) traces sampled every `dt_ms`, each starting at rest before its
    stimulus (E_L = that rest unless `rest_mV`). C is the within-bin regression slope of I_inj on
    dV/dt, g_L the slope of I_ion(V) within 10 mV below rest to 5 mV above (samples near spikes left
    out; in a cell with dendrites and slow currents the offset of I_ion drifts with the mean input,
    its slope does not). V_T starts 3 mV below the median spike onset, Δ_T at 1.5 mV.
    """
    v = np.atleast_2d(np.asarray(v_mV, dtype=float))
    i = np.atleast_2d(np.asarray(current_nA, dtype=float))
    if v.shape != i.shape:
        raise ValueError(f"voltage {v.shape} and current {i.shape} traces must have the same shape")
    rest = float(np.median(v[:, :max(1, int(10.0 / dt_ms))])) if rest_mV is None else float(rest_mV)
    dvdt = np.gradient(v, dt_ms, axis=1)
    keep = _spike_mask(v, dt_ms)
    keep[:, :int(30.0 / dt_ms)] = False  # the first 30 ms: the stimulus switches on
    vs, dv, cur = v[keep], dvdt[keep], i[keep]
    if vs.size < 10 * min_samples:
        raise ValueError(f"only {vs.size} subthreshold samples away from spikes; the dynamic I-V fit needs "
                         f">= {10 * min_samples}: give longer or less strongly driven noise traces")
    which = np.floor((vs - rest) / bin_mV).astype(int)
    cov = var = 0.0
    bins = []
    for b in np.unique(which):
        sel = which == b
        if sel.sum() < min_samples:
            continue
        d, c = dv[sel] - dv[sel].mean(), cur[sel] - cur[sel].mean()
        cov, var = cov + float(d @ c), var + float(d @ d)
        bins.append(sel)
    if not bins or var <= 0:
        raise ValueError("the voltage traces do not fluctuate: the dynamic I-V fit needs noise-driven responses")
    C = cov / var
    if not C > 0:
        raise ValueError(f"dynamic I-V: capacitance estimate {C:.3g} nF is not positive; are current and voltage "
                         "from the same traces?")
    v_bin = np.array([vs[sel].mean() for sel in bins])
    i_ion = np.array([(cur[sel] - C * dv[sel]).mean() for sel in bins])
    near = (v_bin > rest - 10.0) & (v_bin < rest + 5.0)
    if near.sum() < 3:
        raise ValueError(f"the noise traces hardly visit the range around rest ({rest:.1f} mV); the dynamic I-V fit "
                         "needs weaker noise (fewer spikes)")
    gl = float(np.polyfit(v_bin[near], i_ion[near], 1)[0])
    if not gl > 0:
        raise ValueError(f"dynamic I-V: leak conductance estimate {gl:.3g} uS is not positive")
    onsets = spike_onsets_mV(v, dt_ms)
    vt = float(np.median(onsets)) - 3.0 if onsets.size else rest + 20.0
    return AdExParams(C_nF=float(C), gl_uS=gl, el_mV=rest, vt_mV=vt, delta_t_mV=1.5, v_reset_mV=rest, t_ref_ms=0.5)


# ------------------------------------------------------------------------------------------------ stage 2
#: searched parameters: (name, low, high, log-scale); vt and gl relative to stage 1's
_SEARCH = (("dvt_mV", -8.0, 8.0, False), ("del_mV", -4.0, 4.0, False), ("delta_t_mV", 0.3, 6.0, True), ("gl_scale", 0.6, 1.6, True),
           ("v_reset_mV", -80.0, -40.0, False), ("a_uS", 1e-4, 0.05, True), ("b_nA", 1e-4, 0.2, True),
           ("tau_w_ms", 5.0, 500.0, True), ("t_ref_ms", 0.2, 3.0, True))


def _candidate(base: AdExParams, x: np.ndarray) -> AdExParams:
    named = dict(zip([s[0] for s in _SEARCH], x))
    v_reset = min(named["v_reset_mV"], base.vt_mV + named["dvt_mV"] - 1.0)
    return dataclasses.replace(base, vt_mV=base.vt_mV + named["dvt_mV"], el_mV=base.el_mV + named["del_mV"], delta_t_mV=named["delta_t_mV"],
                               gl_uS=base.gl_uS * named["gl_scale"], v_reset_mV=v_reset, a_uS=named["a_uS"],
                               b_nA=named["b_nA"], tau_w_ms=named["tau_w_ms"], t_ref_ms=named["t_ref_ms"])


def matched_fraction(t_a: np.ndarray, t_b: np.ndarray, window_ms: float = GAMMA_WINDOW_MS) -> float:
    """Fraction of all spikes of both trains with a spike of the other within ±`window_ms` (1 if both silent).

    Unlike Kistler's Γ it stays in [0, 1] at any rate (Γ's chance correction diverges as 2·rate·window → 1,
    e.g. at 250 Hz with ±2 ms), so a search cannot exploit it.
    """
    if t_a.size == 0 and t_b.size == 0:
        return 1.0
    if t_a.size == 0 or t_b.size == 0:
        return 0.0

    def covered(x, y):
        k = np.clip(np.searchsorted(y, x), 1, y.size - 1) if y.size > 1 else np.zeros(x.size, dtype=int)
        nearest = np.minimum(np.abs(x - y[k]), np.abs(x - y[np.maximum(k - 1, 0)]))
        return int((nearest <= window_ms).sum())

    return (covered(t_a, t_b) + covered(t_b, t_a)) / (t_a.size + t_b.size)


def spike_train_loss(target: Sequence[np.ndarray], predicted: Sequence[np.ndarray], duration_ms: float) -> float:
    """Mean over traces of (1 − matched fraction ±2 ms) + |rate error| / (detailed rate + 5 Hz): 0 is perfect."""
    loss = 0.0
    for a, b in zip(target, predicted):
        loss += (1.0 - matched_fraction(a, b)) + abs(b.size - a.size) / (a.size + 5e-3 * duration_ms)
    return loss / max(len(target), 1)


#: voltage agreement enters the search as RMSE of both traces clipped at this level (mV), per VOLTAGE_SCALE_MV
CLIP_MV, VOLTAGE_SCALE_MV = -50.0, 5.0


def fit_spiking(base: AdExParams, v_mV: np.ndarray, current_nA: np.ndarray, dt_ms: float, *, population: int = 64,
                elite: int = 8, iterations: int = 10, seed: int = 0) -> tuple[AdExParams, float]:
    """Stage 2: a cross-entropy search for the spiking parameters around `base` (stage 1's fit).

    Minimises `spike_train_loss` + the clipped-voltage RMSE / VOLTAGE_SCALE_MV on the detailed traces `v_mV` driven by
    `current_nA` ((n, T), every `dt_ms`). Returns the best parameters and their loss.
    """
    v = np.atleast_2d(np.asarray(v_mV, dtype=float))
    cur = np.atleast_2d(np.asarray(current_nA, dtype=float))
    n, n_t = v.shape
    duration = n_t * dt_ms
    t = np.arange(n_t) * dt_ms
    target = [spike_times_at(t, row) for row in v]
    clipped = np.minimum(v, CLIP_MV)[None]
    lo = np.array([math.log(s[1]) if s[3] else s[1] for s in _SEARCH])
    hi = np.array([math.log(s[2]) if s[3] else s[2] for s in _SEARCH])
    as_params = lambda z: np.where([s[3] for s in _SEARCH], np.exp(z), z)  # noqa: E731
    z0 = np.array([0.0, 0.0, math.log(base.delta_t_mV), 0.0, base.el_mV + 5.0, math.log(1e-3), math.log(0.01),
                   math.log(50.0), math.log(0.5)])
    mean, std = np.clip(z0, lo, hi), (hi - lo) / 4.0
    rng = np.random.default_rng(seed)
    best, best_loss = _candidate(base, as_params(mean)), math.inf
    for _ in range(int(iterations)):
        z = np.clip(mean + std * rng.standard_normal((population, len(_SEARCH))), lo, hi)
        z[0] = mean
        cands = [_candidate(base, as_params(row)) for row in z]
        v_sim, spikes = simulate_adex([c for c in cands for _ in range(n)], np.tile(cur, (population, 1)), dt_ms,
                                      v0_mV=np.tile(v[:, 0], population), substeps=3)
        rmse = np.sqrt(np.mean((np.minimum(v_sim, CLIP_MV).reshape(population, n, n_t) - clipped) ** 2, axis=(1, 2)))
        losses = np.array([spike_train_loss(target, spikes[k * n:(k + 1) * n], duration) for k in range(population)])
        losses = losses + rmse / VOLTAGE_SCALE_MV
        order = np.argsort(losses)
        if losses[order[0]] < best_loss:
            best, best_loss = cands[order[0]], float(losses[order[0]])
        top = z[order[:elite]]
        mean, std = top.mean(axis=0), np.maximum(top.std(axis=0), (hi - lo) / 50.0)
    return best, best_loss


def fit_adex(v_mV: np.ndarray, current_nA: np.ndarray, dt_ms: float, *, noise_rows: Sequence[int] | None = None,
             **search) -> tuple[AdExParams, dict]:
    """Both stages on one model's traces: the dynamic I–V on `noise_rows` (default all), then spike times on all.

    Returns the parameters and a report (stage-1 parameters, the search loss).
    """
    v = np.atleast_2d(np.asarray(v_mV, dtype=float))
    cur = np.atleast_2d(np.asarray(current_nA, dtype=float))
    rows = np.arange(v.shape[0]) if noise_rows is None else np.asarray(noise_rows, dtype=int)
    base = fit_subthreshold(v[rows], cur[rows], dt_ms)
    params, loss = fit_spiking(base, v, cur, dt_ms, **search)
    return params, {"stage1": base.to_dict(), "loss": loss}


def save_fits(fits: dict[str, AdExParams], path: str | Path, provenance: dict | None = None) -> Path:
    """Write {model_id: AdExParams} (and how they were fitted) as JSON."""
    path = Path(path)
    doc = {"schema": "noble_neuron.adex/1", "provenance": provenance or {},
           "models": {m: p.to_dict() for m, p in fits.items()}}
    path.write_text(json.dumps(doc, indent=1))
    return path


def load_fits(path: str | Path = SHIPPED_FITS) -> dict[str, AdExParams]:
    """{model_id: AdExParams} from a `save_fits` file (default: the shipped family fits)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no AdEx fits at {path}; make them with `noble-neuron fit-adex --data DATA.h5 "
                                f"--out {path.name}`")
    doc = json.loads(path.read_text())
    if doc.get("schema") != "noble_neuron.adex/1":
        raise ValueError(f"{path} is not an AdEx fit file (schema {doc.get('schema')!r}, expected 'noble_neuron.adex/1')")
    return {m: AdExParams.from_dict(p) for m, p in doc["models"].items()}
