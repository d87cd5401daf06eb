"""The current a detailed cell's dendrites draw from its soma, as a filter of the soma voltage plus a spike-triggered part.

Hybrid network cells (`noble_neuron.neuron.hybrid_cell`) keep the detailed model's soma and axon with their own
channels, so spikes, refractoriness and the slow K/Ca currents come from the true kinetics, and replace the
dendritic tree by the current it feeds into the soma:

    I_dend(t) = i0 + g0 x(t) + C dx/dt - sum_k d_k s_k(t) + sum_j a_j sum_spikes exp(-(t - t_spike) / taue_j)
    x = v - v_rest,   tau_k ds_k/dt = x - s_k

The linear part is an RC admittance in Foster form (g0, C, d_k >= 0: passive, so stable whatever the soma does),
fitted by least squares on the axial current the detailed soma feeds its dendrites (their total membrane current,
NEURON's ``i_membrane_``) while the cell is driven by Ornstein-Uhlenbeck currents from hyperpolarised to ~50 Hz
firing, with the samples around spikes left out. What the tree does during and after a spike (its own Na and K
channels answer the back-propagating AP) is no linear filter's: a spike-triggered current (GIF's eta) is fitted on
the linear part's residual. Whether it helps is decided per model in closed loop: each candidate hybrid is run on
a held-out OU current and the one whose spikes best match the detailed cell's is kept (`measure_dendrite_load`).

Why not NEURON's ``Impedance``: on this family its quasi-active input impedance at 0.1 Hz was 60 MOhm where a
5 pA step gives 90 MOhm (measured 2026-12-07), and its treatment of point-process states did not match a run.
"""
from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DomainWarning

__all__ = ["DendriteLoad", "SHIPPED_LOADS", "TAUS_MS", "attach_load", "dendritic_sections", "fit_dendrite_load",
           "fit_family_loads", "instantiate_model", "load_shipped_loads", "measure_dendrite_load",
           "mechanism_parameters", "ou_training_current", "record_dendritic_current"]

log = logging.getLogger(__name__)
_INIT_HANDLER: Any = None
_WARNED_CELSIUS: set[float] = set()

#: the modes' time constants (ms): log-spaced over the tree's charging (0.1 ms) to Ih/slow-K (300 ms) times
TAUS_MS = tuple(float(t) for t in np.logspace(math.log10(0.1), math.log10(300.0), 10))
#: the mechanism (mod/nn_DendriteLoad.mod) holds this many linear and spike-triggered modes
MAX_MODES, MAX_SPIKE_MODES = 12, 8
#: the spike-triggered current's time constants (ms): the AP (0.15 ms) to the dendrites' recovery (15 ms); 5 modes
#: kept timing best among 3, 5 and 8 (docs/network_mode.md, "Hybrid cells: variants")
TAUE_MS = (0.15, 0.5, 1.5, 5.0, 15.0)
#: the spike-triggered current starts when the soma crosses this voltage upwards (mV)
SPIKE_TRIGGER_MV = -20.0
#: (mean nA, s.d. nA) of each 600 ms OU segment of the training current: hyperpolarised to ~50 Hz firing
OU_SEGMENTS_NA = ((-0.05, 0.03), (0.0, 0.05), (0.05, 0.08), (0.12, 0.1), (0.25, 0.1))
OU_TAU_MS, SEGMENT_MS, SETTLE_MS, DT_MS = 5.0, 600.0, 300.0, 0.025
#: samples this close to a spike (ms before, after) are left out of the fit: the tree is not linear there
SPIKE_EXCLUSION_MS = (1.0, 5.0)
#: ... and so is every sample above this voltage (mV), with the same margins around each excursion
NONLINEAR_ABOVE_MV = -50.0
_UF_PER_NF_UM2 = 1e-5  # cm (uF/cm2) = C (nF) / (area (um2) * 1e-5)
#: the spike-triggered current's time constants are chosen per model among these (() : none) by the hybrid's
#: closed-loop spike timing on a held-out OU current (`measure_dendrite_load`); a ridge penalty on the amplitudes
#: was tried and lost everywhere (it breaks the fast modes' cancellation: extra spikes)
SPIKE_MODE_CANDIDATES = {"linear": (), "spike-triggered, 5 modes": TAUE_MS,
                         "spike-triggered, 8 modes": tuple(0.1 * 2.0 ** k for k in range(8))}
#: fits of the shipped PV family (``noble-neuron fit-dendrite-loads``)
SHIPPED_LOADS = Path(__file__).resolve().parent.parent / "detailed" / "pv_family" / "dendrite_loads.json"


@dataclass(frozen=True)
class DendriteLoad:
    """A dendritic tree as the linear current it draws from the soma (units in field names)."""

    vrest_mV: float
    i0_nA: float
    g0_uS: float
    C_nF: float
    d_uS: tuple[float, ...]
    tau_ms: tuple[float, ...]
    a_nA: tuple[float, ...] = ()
    taue_ms: tuple[float, ...] = ()
    fit_rms_pA: float = float("nan")
    celsius_degC: float = float("nan")
    model_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.d_uS) != len(self.tau_ms):
            raise ValueError(f"d_uS has {len(self.d_uS)} modes and tau_ms {len(self.tau_ms)}; give one tau per mode")
        if len(self.a_nA) != len(self.taue_ms) or len(self.a_nA) > MAX_SPIKE_MODES:
            raise ValueError(f"a_nA ({len(self.a_nA)}) and taue_ms ({len(self.taue_ms)}) need one time constant per "
                             f"spike-triggered mode, at most {MAX_SPIKE_MODES}")
        if min(self.taue_ms, default=1.0) <= 0 or not all(math.isfinite(a) for a in self.a_nA):
            raise ValueError(f"spike-triggered modes need taue_ms > 0 and finite a_nA, got {self.taue_ms}, {self.a_nA}")
        if len(self.d_uS) > MAX_MODES:
            raise ValueError(f"{len(self.d_uS)} modes: nn_DendriteLoad holds at most {MAX_MODES}")
        if min(self.tau_ms, default=1.0) <= 0 or min(self.d_uS, default=0.0) < 0 or self.g0_uS < 0 or self.C_nF < 0:
            raise ValueError("a passive load needs tau_ms > 0 and g0_uS, C_nF, d_uS >= 0 "
                             f"(got g0 {self.g0_uS}, C {self.C_nF}, d {self.d_uS}, tau {self.tau_ms})")
        if not all(math.isfinite(x) for x in (self.vrest_mV, self.i0_nA, self.g0_uS, self.C_nF, *self.d_uS)):
            raise ValueError("DendriteLoad values must be finite numbers")

    @property
    def dc_conductance_uS(self) -> float:
        """The tree's steady-state (0 Hz) slope conductance (uS)."""
        return self.g0_uS - sum(self.d_uS)

    def admittance_uS(self, freq_Hz: np.ndarray) -> np.ndarray:
        """Complex input admittance Y(f) (uS) of the load at frequencies `freq_Hz` (Hz)."""
        w = 2j * np.pi * np.asarray(freq_Hz, float) / 1000.0  # rad/ms
        y = self.g0_uS + w * self.C_nF
        for d, tau in zip(self.d_uS, self.tau_ms):
            y = y - d / (1.0 + w * tau)
        return y

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in ("d_uS", "tau_ms", "a_nA", "taue_ms"):
            out[name] = list(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "DendriteLoad":
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown DendriteLoad keys {sorted(unknown)}; expected {sorted(cls.__dataclass_fields__)}")
        data = dict(data)
        for name in ("d_uS", "tau_ms", "a_nA", "taue_ms"):
            if name in data:
                data[name] = tuple(data[name])
        return cls(**data)


def _mode_filter(x: np.ndarray, tau_ms: float, dt_ms: float) -> np.ndarray:
    """The mode's state along a sampled x (exact exponential update, as cnexp does in the mechanism)."""
    from scipy.signal import lfilter

    a = math.exp(-dt_ms / tau_ms)
    return lfilter([1.0 - a], [1.0, -a], x, zi=[a * x[0]])[0]


def fit_dendrite_load(v_mV: np.ndarray, i_dend_nA: np.ndarray, dt_ms: float, *, settle_ms: float = SETTLE_MS,
                      taus_ms: tuple[float, ...] = TAUS_MS, spike_taus_ms: tuple[float, ...] = TAUE_MS,
                      model_id: str | None = None) -> DendriteLoad:
    """Fit a passive `DendriteLoad` to a soma voltage and the current the dendrites drew (same samples).

    The first `settle_ms` must be without input (their end is taken as rest); samples near spikes are left out of
    the linear part, whose residual the spike-triggered modes (`spike_taus_ms`; () for none) then fit.
    """
    from scipy.optimize import lsq_linear

    from ..features.spikes import spike_times_at

    v, i_d = np.asarray(v_mV, float), np.asarray(i_dend_nA, float)
    if v.shape != i_d.shape or v.ndim != 1:
        raise ValueError(f"v_mV and i_dend_nA must be 1-D and of one length, got {v.shape} and {i_d.shape}")
    skip = int(round(settle_ms / dt_ms))
    if not 0 < skip < v.size // 2:
        raise ValueError(f"settle_ms {settle_ms} must cover less than half of the {v.size * dt_ms:.0f} ms trace")
    vrest = float(v[skip - 1])
    x = v - vrest
    columns = [np.ones_like(x), x, np.gradient(v, dt_ms)] + [-_mode_filter(x, tau, dt_ms) for tau in taus_ms]
    a = np.column_stack(columns)
    t = np.arange(v.size) * dt_ms
    keep = np.ones(v.size, bool)
    keep[:skip] = False
    for ts in spike_times_at(t, v):
        keep[(t > ts - SPIKE_EXCLUSION_MS[0]) & (t < ts + SPIKE_EXCLUSION_MS[1])] = False
    # events that stop short of a spike (spikelets, failed or broad APs) are not linear either
    above = np.flatnonzero(v > NONLINEAR_ABOVE_MV)
    after = int(round(SPIKE_EXCLUSION_MS[1] / dt_ms))
    for start in above[np.r_[True, np.diff(above) > 1]] if above.size else []:
        keep[max(0, start - int(round(SPIKE_EXCLUSION_MS[0] / dt_ms))):start + after] = False
    keep[above] = False
    lower = np.r_[-np.inf, np.zeros(a.shape[1] - 1)]
    sol = lsq_linear(a[keep], i_d[keep], bounds=(lower, np.inf))
    coef = sol.x
    rms_pA = float(np.std(a[keep] @ coef - i_d[keep]) * 1e3)
    # what the linear part leaves around spikes, as spike-triggered exponentials from the sample the trigger fires
    residual = (i_d - a @ coef)[skip:]
    onsets = np.flatnonzero((v[skip:-1] <= SPIKE_TRIGGER_MV) & (v[skip + 1:] > SPIKE_TRIGGER_MV)) + 1
    a_nA: tuple[float, ...] = ()
    if spike_taus_ms and onsets.size:
        train = np.zeros(residual.size)
        train[onsets] = 1.0
        from scipy.signal import lfilter

        basis = np.column_stack([lfilter([1.0], [1.0, -math.exp(-dt_ms / tau)], train) for tau in spike_taus_ms])
        a_nA = tuple(float(x) for x in np.linalg.lstsq(basis, residual, rcond=None)[0])
    return DendriteLoad(vrest_mV=vrest, i0_nA=float(coef[0]), g0_uS=float(coef[1]), C_nF=float(coef[2]),
                        d_uS=tuple(float(c) for c in coef[3:]), tau_ms=tuple(taus_ms), a_nA=a_nA,
                        taue_ms=tuple(spike_taus_ms) if a_nA else (), fit_rms_pA=rms_pA,
                        model_id=model_id, extra={"fit_samples": int(keep.sum()),
                                                  "current_rms_pA": float(np.std(i_d[keep]) * 1e3)})


def ou_training_current(dt_ms: float = DT_MS, seed: int = 0) -> np.ndarray:
    """The fit's stimulus (nA per `dt_ms` sample): `SETTLE_MS` of nothing, then the OU segments."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    a = math.exp(-dt_ms / OU_TAU_MS)
    parts = [np.zeros(int(round(SETTLE_MS / dt_ms)))]
    for mu, sigma in OU_SEGMENTS_NA:
        n = int(round(SEGMENT_MS / dt_ms))
        noise = rng.standard_normal(n) * sigma * math.sqrt(1 - a * a)
        parts.append(mu + lfilter([1.0], [1.0, -a], noise))
    return np.concatenate(parts)


def dendritic_sections(cell: Any) -> list:
    """The sections a hybrid cell replaces: all of the cell's sections outside its somatic and axonal lists."""
    hoc = getattr(cell, "hoc", cell)
    for name in ("all", "somatic", "axonal"):
        if not hasattr(hoc, name):
            raise TypeError(f"{cell!r} has no SectionList '{name}': a hybrid cell needs a template with "
                            "`all`, `somatic` and `axonal` lists (the Allen/BluePyOpt convention)")
    kept = {s.name() for s in hoc.somatic} | {s.name() for s in hoc.axonal}
    return [s for s in hoc.all if s.name() not in kept]


def _couple_modes_to_step() -> None:
    """At every finitialize: fixed step couples the load's modes implicitly at h.dt; CVode integrates them as ODEs.

    Also warns (once per temperature) when celsius is not the temperature the loads were fitted at.
    """
    from neuron import h

    h.implicit_dt_nn_DendriteLoad = 0.0 if h.cvode_active() else float(h.dt)
    fitted = {round(load.celsius_fit, 2) for load in h.List("nn_DendriteLoad") if load.celsius_fit >= 0}
    wrong = sorted(c for c in fitted if abs(c - h.celsius) > 0.01)
    if wrong and h.celsius not in _WARNED_CELSIUS:
        _WARNED_CELSIUS.add(h.celsius)
        warnings.warn(f"h.celsius is {h.celsius:g} but HybridCell dendritic loads were fitted at {wrong} degC: the "
                      f"channels' kinetics and the loads do not hold at this temperature (in NetPyNE set "
                      f"cfg.hParams['celsius'] = {wrong[0]:g})", DomainWarning, stacklevel=2)


def _install_init_handler() -> None:
    global _INIT_HANDLER
    if _INIT_HANDLER is None:
        from neuron import h

        _INIT_HANDLER = h.FInitializeHandler(0, _couple_modes_to_step)


def mechanism_parameters(load: DendriteLoad) -> dict[str, float]:
    """The ``nn_DendriteLoad`` parameters (by name) that realise `load` (its capacitance goes into the soma's cm)."""
    params = {"vrest": load.vrest_mV, "i0": load.i0_nA, "g0": load.g0_uS, "vspike": SPIKE_TRIGGER_MV,
              "celsius_fit": load.celsius_degC if math.isfinite(load.celsius_degC) else -1.0}
    for k, (d, tau) in enumerate(zip(load.d_uS, load.tau_ms), start=1):
        params[f"d{k}"], params[f"tau{k}"] = d, tau
    for k, (a, tau) in enumerate(zip(load.a_nA, load.taue_ms), start=1):
        params[f"a{k}"], params[f"taue{k}"] = a, tau
    return {name: float(value) for name, value in params.items()}


def attach_load(cell: Any, load: DendriteLoad) -> Any:
    """Delete `cell`'s dendritic sections and put `load` in their place on its soma; return the point process
    (keep it: NEURON deletes a point process when its last Python reference goes)."""
    from neuron import h

    for sec in dendritic_sections(cell):
        h.delete_section(sec=sec)
    mech = h.nn_DendriteLoad(cell.soma(0.5))
    for name, value in mechanism_parameters(load).items():
        setattr(mech, name, value)
    area_um2 = sum(seg.area() for seg in cell.soma)
    for seg in cell.soma:
        seg.cm += load.C_nF / (area_um2 * _UF_PER_NF_UM2)
    _install_init_handler()
    return mech


def record_dendritic_current(cell: Any, current_nA: np.ndarray, dt_ms: float = DT_MS, *, dendrites: bool = True
                             ) -> tuple[np.ndarray, np.ndarray | None]:
    """Drive `cell`'s soma with `current_nA` (one value per `dt_ms`); return soma v (mV) and the dendrites' current (nA).

    The current the dendrites draw from the soma is their total membrane current (ionic + capacitive); with
    `dendrites=False` only the soma voltage is recorded (None in its place). Runs its own fixed-step simulation:
    call it with no other cells in the process that should not be simulated.
    """
    from neuron import h

    h.load_file("stdrun.hoc")
    cvode = h.CVode()
    was_fast, was_active = cvode.use_fast_imem(), cvode.active()
    cvode.use_fast_imem(1 if dendrites else was_fast)
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur = 0.0, 1e9
    played = h.Vector(np.asarray(current_nA, float))
    played.play(stim._ref_amp, dt_ms)
    v_rec = h.Vector().record(cell.soma(0.5)._ref_v)
    segments = [seg for sec in dendritic_sections(cell) for seg in sec] if dendrites else []
    records = [h.Vector().record(seg._ref_i_membrane_) for seg in segments]
    try:
        cvode.active(0)
        h.dt = dt_ms
        h.finitialize(float(h.v_init))
        h.continuerun((len(current_nA) - 1) * dt_ms)
        v = np.array(v_rec)
        i_dend = np.sum([np.array(r) for r in records], axis=0) if dendrites else None
    finally:
        played.play_remove()
        stim.amp = 0.0
        cvode.use_fast_imem(was_fast)
        cvode.active(was_active)
    return v, i_dend


def measure_dendrite_load(model: Any, *, seed: int = 0) -> DendriteLoad:
    """Fit the dendritic load of a detailed model (a family model id or a `HofModel`/`CellSpec`).

    The linear part is fitted on the model's response to an OU current; the spike-triggered part is chosen among
    `SPIKE_MODE_CANDIDATES` by the hybrid's spike timing against the detailed cell on another OU current (seed + 1).
    ~25 s per model on one core.
    """
    from dataclasses import replace

    from neuron import h

    from ..features.spike_metrics import coincidence_gamma, subthreshold_rmse_mV
    from ..features.spikes import spike_times_at

    cell = instantiate_model(model)
    model_id = getattr(cell, "model_id", None)
    v, i_dend = record_dendritic_current(cell, ou_training_current(DT_MS, seed), DT_MS)
    held_out = ou_training_current(DT_MS, seed + 1)
    v_ref, _ = record_dendritic_current(cell, held_out, DT_MS)
    del cell  # no detailed cell may be simulated beside the candidates
    t = np.arange(v_ref.size) * DT_MS
    s_ref = spike_times_at(t, v_ref)
    scores, best = {}, None
    for key, spike_taus in SPIKE_MODE_CANDIDATES.items():
        load = fit_dendrite_load(v, i_dend, DT_MS, model_id=model_id, spike_taus_ms=spike_taus)
        load = replace(load, celsius_degC=float(h.celsius))
        hybrid = instantiate_model(model)
        mech = attach_load(hybrid, load)  # NEURON deletes a point process nobody holds
        v_h, _ = record_dendritic_current(hybrid, held_out, DT_MS)
        del hybrid, mech
        s_h = spike_times_at(t, v_h)
        gamma = coincidence_gamma(s_ref, s_h, 2.0, t[-1] - SETTLE_MS)
        rmse = subthreshold_rmse_mV(t, v_ref, v_h, [s_ref, s_h])
        scores[key] = {"gamma_2ms": round(float(gamma), 4), "subthreshold_rmse_mV": round(float(rmse), 4),
                       "spikes": int(s_h.size)}
        if best is None or gamma - 0.1 * rmse > best[0]:
            best = (gamma - 0.1 * rmse, key, load)
    _, chosen, load = best
    load = replace(load, extra={**load.extra, "selected": chosen, "held_out_spikes_detailed": int(s_ref.size),
                                "held_out": scores})
    log.info("%s: dendritic load fitted, residual %.1f pA of %.1f pA", load.model_id, load.fit_rms_pA,
             load.extra["current_rms_pA"])
    return load


def instantiate_model(model: Any) -> Any:
    """A new instance of a detailed model: a family model id or anything with ``.instantiate()`` (HofModel, CellSpec)."""
    if isinstance(model, str):
        from ..detailed.pv_family import get_model

        return get_model(model).instantiate()
    if hasattr(model, "instantiate"):
        return model.instantiate()
    raise TypeError(f"give a family model id or a HofModel/CellSpec (something with .instantiate()), not "
                    f"{type(model).__name__}: a hybrid cell is built from its own copy of the detailed cell, whose "
                    "dendrites it deletes")


def load_shipped_loads(path: str | Path = SHIPPED_LOADS) -> dict[str, DendriteLoad]:
    """The fitted loads of the shipped family, by model id."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; fit the loads with `noble-neuron fit-dendrite-loads --out {path}`")
    data = json.loads(path.read_text())
    return {m: DendriteLoad.from_dict(d) for m, d in data["loads"].items()}


def _fit_in_fresh_process(model_id: str) -> dict:
    return measure_dendrite_load(model_id).to_dict()


def fit_family_loads(model_ids: list[str], out: str | Path, workers: int = 1) -> dict[str, DendriteLoad]:
    """Fit the loads of family models, each in its own process (no cell of another model is simulated), → JSON."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a .json file name")
    if not out.parent.is_dir():
        raise ValueError(f"the folder of --out {out} does not exist; create it first")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        fits = dict(zip(model_ids, pool.map(_fit_in_fresh_process, model_ids)))
    payload = {"description": "dendritic loads of hybrid network cells (noble_neuron.simulation.dendrite_load)",
               "command": f"noble-neuron fit-dendrite-loads --out {out.name}", "taus_ms": list(TAUS_MS),
               "ou_segments_nA": [list(s) for s in OU_SEGMENTS_NA], "loads": fits}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(out)
    return {m: DendriteLoad.from_dict(d) for m, d in fits.items()}
