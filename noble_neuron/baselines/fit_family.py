"""Fit an AdEx (`noble_neuron.baselines.adex`) to every model of a dataset of fluctuating-input responses.

The data are a streaming-preset dataset (`noble-neuron generate --protocol streaming`): per model 4 OU
currents, 5 PSC barrages, 3 steps and 2 ramps of 2 s. The fit uses the first 3 OU currents (dynamic
I–V, then spike times) and the 3 steps (FI points); the 4th OU current, the barrages and the ramps are
held out and scored: spike coincidence Γ (±2 ms), the bounded matched fraction, rates and the
subthreshold RMSE (spikes cut out), so the baseline's quality is known before it meets a network.
"""
from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.dataset import open_dataset
from ..features.spike_metrics import coincidence_gamma, subthreshold_rmse_mV
from ..features.spikes import spike_times_at
from .adex import AdExParams, fit_spiking, fit_subthreshold, matched_fraction, simulate_adex

__all__ = ["FIT_OU_TRACES", "fit_dataset", "fit_one_model", "held_out_summary", "score_adex"]

#: how many of a model's OU-current traces the fit uses (the rest are held out)
FIT_OU_TRACES = 3


def _rows(ds, model_id: str) -> tuple[np.ndarray, np.ndarray]:
    ou = ds.rows(model_id, "ou_noise")
    steps = ds.rows(model_id, "long_square")
    if ou.size <= FIT_OU_TRACES or steps.size == 0:
        raise ValueError(f"{ds.path}: model {model_id} has {ou.size} OU-current and {steps.size} step traces; an AdEx "
                         f"fit needs > {FIT_OU_TRACES} OU currents and a step (generate with --protocol streaming)")
    fit = np.r_[ou[:FIT_OU_TRACES], steps]
    held = np.setdiff1d(ds.rows(model_id), fit)
    return fit, held


def score_adex(params: AdExParams, v_mV: np.ndarray, current_nA: np.ndarray, dt_ms: float) -> dict:
    """Per-trace agreement of `params` with detailed traces (`v_mV`, `current_nA`: (n, T), every `dt_ms`)."""
    v = np.atleast_2d(v_mV)
    v_sim, spikes = simulate_adex(params, current_nA, dt_ms, v0_mV=v[:, 0], substeps=3)
    t = np.arange(v.shape[1]) * dt_ms
    duration = v.shape[1] * dt_ms
    out = {"gamma_2ms": [], "matched_fraction": [], "rate_Hz_detailed": [], "rate_Hz_adex": [], "subthreshold_rmse_mV": []}
    for row, sim, s in zip(v, v_sim, spikes):
        d = spike_times_at(t, row)
        out["gamma_2ms"].append(coincidence_gamma(d, s, 2.0, duration))
        out["matched_fraction"].append(matched_fraction(d, s))
        out["rate_Hz_detailed"].append(1000.0 * d.size / duration)
        out["rate_Hz_adex"].append(1000.0 * s.size / duration)
        out["subthreshold_rmse_mV"].append(subthreshold_rmse_mV(t, row, sim, [d, s]))
    return out


def fit_one_model(path: str | Path, model_id: str, seed: int = 0, iterations: int = 10) -> dict:
    """Fit one model of the dataset at `path`; returns {"params", "stage1", "loss", "held_out", "wall_s"}."""
    start = time.perf_counter()
    ds = open_dataset(path)
    fit_rows, held_rows = _rows(ds, model_id)
    v, cur = ds.read(fit_rows).astype(float), ds.read(fit_rows, "stimulus_nA").astype(float)
    base = fit_subthreshold(v[:FIT_OU_TRACES], cur[:FIT_OU_TRACES], ds.dt_ms)
    params, loss = fit_spiking(base, v, cur, ds.dt_ms, seed=seed, iterations=iterations)
    held = score_adex(params, ds.read(held_rows).astype(float), ds.read(held_rows, "stimulus_nA").astype(float),
                      ds.dt_ms)
    held["kinds"] = [str(k) for k in ds.row_kinds()[held_rows]]
    return {"params": params, "stage1": base.to_dict(), "loss": loss, "held_out": held,
            "wall_s": time.perf_counter() - start}


def fit_dataset(path: str | Path, model_ids: Sequence[str] | None = None, workers: int = 1,
                progress: bool = True) -> dict[str, dict]:
    """`fit_one_model` for every model of the dataset (or `model_ids`), on `workers` processes."""
    ds = open_dataset(path)
    if not ds.complete:
        raise ValueError(f"{path} is not complete; finish it with `noble-neuron generate` (same arguments) first")
    ids = list(model_ids) if model_ids else list(ds.model_ids)
    unknown = sorted(set(ids) - set(ds.model_ids))
    if unknown:
        raise KeyError(f"models {unknown} are not in {path}; it holds {ds.model_ids[:5]}…")
    results: dict[str, dict] = {}
    if workers <= 1:
        for k, m in enumerate(ids):
            results[m] = fit_one_model(path, m)
            if progress:
                print(f"[{k + 1}/{len(ids)}] {m}: loss {results[m]['loss']:.3f}", flush=True)
        return results
    with ProcessPoolExecutor(max_workers=int(workers)) as pool:
        futures = {m: pool.submit(fit_one_model, str(path), m) for m in ids}
        for k, m in enumerate(ids):
            results[m] = futures[m].result()
            if progress:
                print(f"[{k + 1}/{len(ids)}] {m}: loss {results[m]['loss']:.3f}", flush=True)
    return results


def held_out_summary(held_out: dict[str, dict]) -> dict:
    """Medians over models' held-out traces, all together and per stimulus kind, of `score_adex`'s figures.

    `held_out`: {model id: fit_one_model(...)["held_out"]} (or the same as stored in a fit file's provenance).
    """
    names = ("gamma_2ms", "matched_fraction", "subthreshold_rmse_mV")
    kinds = np.concatenate([np.asarray(h["kinds"]) for h in held_out.values()])
    values = {k: np.concatenate([np.asarray(h[k], dtype=float) for h in held_out.values()]) for k in names}
    rate_d = np.concatenate([np.asarray(h["rate_Hz_detailed"], dtype=float) for h in held_out.values()])
    rate_a = np.concatenate([np.asarray(h["rate_Hz_adex"], dtype=float) for h in held_out.values()])

    def block(sel: np.ndarray) -> dict:
        return {"n_traces": int(sel.sum()), **{k: float(np.nanmedian(v[sel])) for k, v in values.items()},
                "rate_Hz_detailed_mean": float(rate_d[sel].mean()), "rate_Hz_adex_mean": float(rate_a[sel].mean())}

    return {"all": block(np.ones(kinds.size, dtype=bool)),
            "per_kind": {str(k): block(kinds == k) for k in sorted(set(kinds.tolist()))}}
