"""Training data of both training loops: the training models' traces, their validation split, scalers.

Only models with split ``'train'`` are used; their features come from the dataset's
``/features`` table and the `FeatureScaler`, amplitude range and feature hull are fit on them
alone. Validation holds out every k-th Long Square amplitude of each training model (interior
amplitudes only, so validation stays inside the trained amplitude range) and every k-th of its
other stimuli (`heldout_mask`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.dataset import open_dataset
from ..features.scaler import FeatureScaler
from ..surrogate.config import SurrogateConfig
from ..surrogate.backbone import fit_model_backbone
from ..surrogate.decoder import refractory_samples
from ..surrogate.domain import hull_vertices
from ..surrogate.encoding import AMPLITUDE_THRESHOLD_NA, characteristic_amplitude, scale_amplitude

__all__ = ["TrainingData", "fit_backbones", "heldout_mask", "load_training_data", "model_ap_templates"]

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """Traces of the training models' rows (whole-trace event models: on their coarse grid) and their split."""

    stim: np.ndarray  # (N, L) float32 nA
    volt: np.ndarray  # (N, L) float32 mV
    amp_scaled: np.ndarray  # (N,) float32
    feat_scaled: np.ndarray  # (N, F) float32
    train_idx: np.ndarray
    val_idx: np.ndarray
    events: np.ndarray | None = None  # event models: (N, Lc) spike phase on the coarse grid


def _model_amp_range(model: int, rows_model: np.ndarray, train_idx: np.ndarray, amps: np.ndarray) -> dict:
    """{"amp_range_nA": (min, max)} of the characteristic amplitudes model `model` was trained on ({} if none):
    SurrogateCell(model_id) warns outside it, e.g. beyond a rheobase-relative plan's top amplitude."""
    mine = amps[train_idx][rows_model[train_idx] == model]
    return {"amp_range_nA": [float(mine.min()), float(mine.max())]} if mine.size else {}


def _training_celsius(ds, models) -> float | None:
    """The temperature (°C) the training models were simulated at, where they set one (``global.celsius``) and all
    agree; cells of the surrogate warn when a run's ``h.celsius`` differs (the surrogate cannot follow it)."""
    temps = {float(ds.model_parameters[m]["global.celsius"]) for m in models
             if "global.celsius" in ds.model_parameters[m]}
    return temps.pop() if len(temps) == 1 else None


def heldout_mask(amps: np.ndarray, rows_model: np.ndarray, is_ls: np.ndarray, k: int) -> np.ndarray:
    """Every k-th interior Long Square amplitude of each model → validation, and every k-th of
    its other stimuli (noise, barrages, ramps; in row order)."""
    held = np.zeros(amps.shape, dtype=bool)
    if k == 0:
        return held
    for m in np.unique(rows_model):
        sel = (rows_model == m) & is_ls
        uniq = np.unique(amps[sel])
        pick = uniq[[i for i in range(1, uniq.size - 1) if (i + 1) % k == 0]]
        held |= sel & np.isin(amps, pick)
        other = np.flatnonzero((rows_model == m) & ~is_ls)
        held[other[k - 1::k]] = True
    return held


def load_training_data(data_path: Path, sc: SurrogateConfig, kinds: Sequence[str] | None = None,
                       val_every_kth_amplitude: int = 5) -> tuple[TrainingData, dict]:
    """(training data, metadata of the checkpoint to be: dt, length, amplitude range, feature scaler and
    hull, model features, dataset signature, ...) for `sc` from the 'train' models of `data_path`.

    Only protocol `kinds` (None: all); every `val_every_kth_amplitude`-th amplitude held out
    (`heldout_mask`). Event models get their coarse-grid targets and action potentials, streaming
    models the data's refractory period (``spike_refractory_samples``)."""
    ds = open_dataset(data_path)
    if not ds.done.all():
        raise ValueError(f"{data_path} is incomplete: {int((~ds.done).sum())} of {ds.done.size} simulations are "
                         "missing; rerun the same `noble-neuron generate` command to finish it first")
    feats = ds.features()
    if not feats:
        raise ValueError(f"{data_path} has no /features table; run noble_neuron.features.table.extract_features on it first")
    missing = [n for n in sc.feature_names if n not in feats["names"]]
    if missing:
        raise ValueError(f"features {missing} are not in {data_path} (has {feats['names']}); "
                         "set SurrogateConfig.feature_names or re-run extract_features")
    fvals = feats["values"][:, [feats["names"].index(n) for n in sc.feature_names]]
    train_models = [m for m, s in enumerate(ds.model_splits) if s == "train"]
    if not train_models:
        raise ValueError(f"{data_path} has no models with split 'train' (splits: {sorted(set(ds.model_splits))})")
    bad = [m for m in train_models if not np.isfinite(fvals[m]).all()]
    top_nA = float(np.nanmax(ds.amp_nA)) if ds.amp_nA.size else float("nan")
    if bad:
        log.warning("dropping %d training model(s) with undefined features (no spike, or too few firing steps, "
                    "up to %.3g nA: their rheobase lies above the protocol's range; `generate --protocol adaptive` "
                    "draws amplitudes around each model's own rheobase): %s", len(bad), top_nA,
                    [ds.model_ids[m] for m in bad][:10])
    train_models = [m for m in train_models if m not in bad]
    if len(train_models) < 2:
        raise ValueError(f"need >= 2 training models with finite features, got {len(train_models)}; models that never "
                         f"fire up to {top_nA:.3g} nA have none: regenerate with `--protocol adaptive` (amplitudes "
                         "relative to each model's rheobase) or a grid reaching higher currents")
    constant = [n for n, col in zip(sc.feature_names, fvals[train_models].T) if np.ptp(col) <= 0]
    if constant:
        raise ValueError(
            f"feature(s) {constant} are the same for every training model ({fvals[train_models][0].tolist()}): the "
            "protocol's amplitudes are too coarse to tell the models apart (a 50 pA grid gives every model the same "
            "rheobase); regenerate with `--protocol adaptive` (continuous amplitudes around each model's rheobase) or "
            "a finer grid")

    rows = ds.rows()
    rows = rows[np.isin(ds.model_index[rows], train_models)]
    row_kinds = ds.row_kinds()[rows]
    if kinds is not None:
        keep = np.isin(row_kinds, kinds)
        rows, row_kinds = rows[keep], row_kinds[keep]
    if rows.size == 0:
        raise ValueError(f"{data_path} has no finished rows of training models (kinds={kinds})")
    rows_model = ds.model_index[rows]
    held = heldout_mask(ds.amp_nA[rows], rows_model, row_kinds == "long_square", val_every_kth_amplitude)

    stim = ds.read(rows, "stimulus_nA")
    volt = ds.read(rows, "voltage_mV")
    if not (np.isfinite(stim).all() and np.isfinite(volt).all()):
        raise ValueError(f"{data_path} contains NaN/inf traces among the training rows; regenerate them")
    amps = characteristic_amplitude(torch.from_numpy(stim)).numpy().astype(np.float64)
    train_idx, val_idx = np.flatnonzero(~held), np.flatnonzero(held)
    ref = amps[train_idx]
    lo, hi = float(ref.min()), float(ref.max())
    if not hi > lo:
        raise ValueError(f"training stimuli all have the same amplitude {lo} nA; need a range of amplitudes")
    scaler = FeatureScaler.fit(fvals[train_models], sc.feature_names, sc.scaled_low, sc.scaled_high)
    pts = scaler.transform(fvals[train_models])
    hull = hull_vertices(pts)
    amp_scaled = scale_amplitude(amps, (lo, hi), (sc.scaled_low, sc.scaled_high))
    n_fine = int(stim.shape[1])
    events, event_meta = None, {}
    if sc.is_event_model:
        stim, volt, events, event_meta = _event_targets(stim, volt, train_idx, rows_model, ds.dt_ms, sc,
                                                        list(ds.model_ids), row_kinds == "long_square")
    data = TrainingData(stim, volt, amp_scaled.astype(np.float32),
                 scaler.transform(fvals[rows_model]).astype(np.float32), train_idx, val_idx, events)
    meta = {
        "dt_ms": ds.dt_ms, "n_samples": n_fine, **event_meta, "amp_range_nA": (lo, hi), "feature_scaler": scaler,
        "hull_points": hull, "train_model_ids": [ds.model_ids[m] for m in train_models],
        "model_features": {ds.model_ids[m]: {"split": ds.model_splits[m],
                                             **{n: float(v) for n, v in zip(sc.feature_names, fvals[m])},
                                             **_model_amp_range(m, rows_model, train_idx, amps)}
                           for m in range(len(ds.model_ids)) if np.isfinite(fvals[m]).all()},
        "dataset": {"path": str(data_path), "signature": str(ds.attrs.get("signature", "")),
                    "celsius_degC": _training_celsius(ds, train_models)},
        "stimulus_kinds": sorted(set(row_kinds.tolist())),
        "rows_model": rows_model,
    }
    if sc.streaming:
        meta["spike_refractory_samples"] = refractory_samples(volt[train_idx])
    return data, meta


def fit_backbones(stim: np.ndarray, volt: np.ndarray, dt_ms: float, spikes: list[np.ndarray], rows: np.ndarray,
                  rows_model: np.ndarray, model_ids: list[str]) -> dict:
    """{model id: `ModelBackbone`} fitted on the step rows `rows` of each model (currents/voltages (N, L), spike
    times ms per row). A model whose steps cannot support a backbone is left out with a warning (its cells
    then blend their nearest models' backbones)."""
    out = {}
    for m in np.unique(rows_model[rows]):
        own = rows[rows_model[rows] == m]
        try:
            backbone = fit_model_backbone(stim[own], volt[own], dt_ms, [spikes[i] for i in own])
        except ValueError as exc:
            log.warning("no backbone for model %s: %s", model_ids[m], exc)
            continue
        if backbone.isi_ms.size == 0:
            log.warning("no backbone for model %s: none of its training steps fires twice", model_ids[m])
            continue
        out[model_ids[m]] = backbone
    return out


def model_ap_templates(volt, spikes, train_idx, rows_model, dt_ms, pre_ms, model_ids) -> tuple[dict, float]:
    """({model id: its average action potential (mV) from −pre_ms to the fast-AHP trough}, trough time ms)
    from the training rows' traces (N, L) and spike times (ms)."""
    from ..surrogate.decoder import ahp_trough_ms, ap_waveform

    post = ahp_trough_ms(volt[train_idx], [spikes[i] for i in train_idx], dt_ms, pre_ms)
    templates = {}
    for m in np.unique(rows_model[train_idx]):
        own = train_idx[rows_model[train_idx] == m]
        wave = ap_waveform(volt[own], [spikes[i] for i in own], dt_ms, pre_ms, post)
        if wave is not None:
            templates[model_ids[m]] = wave.tolist()
    return templates, post


def _event_targets(stim, volt, train_idx, rows_model, dt_ms, sc: SurrogateConfig, model_ids, is_step):
    """Coarse-grid inputs and targets of an event model (`noble_neuron.surrogate.decoder`): (current (N, Lc) nA,
    interspike voltage (N, Lc) mV, spike phase (N, Lc), metadata with each training model's
    action potential, the window's end ``ap_post_ms`` and its backbone, fitted on its training steps)."""
    from ..features.ephys import spike_times
    from ..surrogate.decoder import bridged_voltage, coarse_times_ms, coarsen, phase_target

    f, pre = sc.time_coarsening, sc.ap_pre_ms
    spikes = [spike_times(v, dt_ms) for v in volt]
    templates, post = model_ap_templates(volt, spikes, train_idx, rows_model, dt_ms, pre, model_ids)
    backbones = fit_backbones(stim, volt, dt_ms, spikes, train_idx[is_step[train_idx]], rows_model, model_ids)
    stim_c = coarsen(stim, f).astype(np.float32)
    t_c = coarse_times_ms(stim_c.shape[1], dt_ms, f)
    on = np.abs(stim) > AMPLITUDE_THRESHOLD_NA
    onset = np.where(on.any(axis=1), on.argmax(axis=1) * dt_ms, np.inf)
    events = np.stack([phase_target(st, t_c, o) for st, o in zip(spikes, onset)]).astype(np.float32)
    between = np.stack([coarsen(bridged_voltage(v, st, dt_ms, pre, post), f) for v, st in zip(volt, spikes)])
    return stim_c, between.astype(np.float32), events, {"ap_templates_mV": templates, "ap_post_ms": post,
                                                        "backbones": backbones}
