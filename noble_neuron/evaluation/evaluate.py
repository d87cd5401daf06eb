"""Accuracy of a surrogate against the NEURON traces of a dataset (numpy/torch only).

Groups (NOBLE's protocol): ``in_distribution`` = training models at held-out Long Square
amplitudes (the validation amplitudes of training, never fitted); ``unseen_models`` = the
models with split 'unseen', every Long Square amplitude. Per group: relative L2 of the
voltage, spike-count exact-match rate, firing mismatches (fires vs silent, counted apart as
NOBLE does), relative spike-count error, spike timing (order-matched, Γ), voltage RMSE below
threshold and between spikes, eFEL feature errors, FI-curve and rheobase errors. For checkpoints with
a physics backbone, the held-out amplitudes also get ``in_distribution_interpolation`` (the non-learned
baseline, `noble_neuron.evaluation.interpolation`), ``in_distribution_true_spikes`` (NEURON's own
spike times composed with the backbone: what the voltage representation allows) and, where the backbones
carry the models' own step trains (which answer ``in_distribution``; their nearest training models' trains answer
``unseen_models``), ``*_learned_spikes`` (the network's spike phase in their place), and ``unseen_models_fi_points``: the unseen
models given their measured FI curve (every other amplitude measured, the others scored),
``unseen_models_recorded_trains`` (given the spike trains of those amplitudes) and
``unseen_models_fi_points_features_only`` (the same rows from the features alone) and ``unseen_models_own_cell``
(measured on those amplitudes' sweeps with their voltage, `noble_neuron.recordings.measure`: its own features,
trains, backbone and action potential).
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import open_dataset
from ..features.ephys import EFEL_FEATURES, count_spikes, efel_features, fi_curve, spike_times, threshold_current
from ..features.spike_metrics import coincidence_gamma
from ..surrogate.model import Surrogate

__all__ = ["evaluate_surrogate", "trace_metrics", "voltage_metrics", "write_report", "HEADLINE_KEYS"]

log = logging.getLogger(__name__)


def _rel_l2(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - true, axis=1) / np.linalg.norm(true, axis=1)


def trace_metrics(pred: np.ndarray, true: np.ndarray, dt_ms: float, window_ms: tuple[float, float],
                  efel_limit: int = 200, amps_nA: np.ndarray | None = None) -> dict[str, Any]:
    """Voltage, spike and eFEL agreement of predicted vs NEURON traces (both (N, L) mV)."""
    rel = _rel_l2(pred, true)
    n_pred = np.array([count_spikes(v, dt_ms, window_ms=window_ms) for v in pred])
    n_true = np.array([count_spikes(v, dt_ms, window_ms=window_ms) for v in true])
    firing_mismatch = (n_pred > 0) != (n_true > 0)
    both = (n_true > 0) & (n_pred > 0)
    time_err = []
    lo, hi = window_ms
    for i in np.flatnonzero(both & (n_pred == n_true)):
        tp, tt = spike_times(pred[i], dt_ms), spike_times(true[i], dt_ms)
        # the counts above are of spikes inside the window; rebound spikes after it are not compared
        time_err.append(np.abs(tp[(tp >= lo) & (tp < hi)] - tt[(tt >= lo) & (tt < hi)]))
    time_err = np.concatenate(time_err) if time_err else np.array([])
    # order-matched timing (n-th predicted vs n-th detailed spike, every trace where both fire) and
    # Kistler's Gamma: ±1 ms on every such trace, ±2 ms only below 100 Hz (it degenerates as 2·rate·Δ → 1)
    order_err, gamma_1ms, gamma_2ms = [], [], []
    for i in np.flatnonzero(both):
        tp, tt = spike_times(pred[i], dt_ms), spike_times(true[i], dt_ms)
        tp, tt = tp[(tp >= lo) & (tp < hi)], tt[(tt >= lo) & (tt < hi)]
        n = min(tp.size, tt.size)
        order_err.append(np.abs(tp[:n] - tt[:n]))
        gamma_1ms.append(coincidence_gamma(tt, tp, 1.0, hi - lo))
        if tt.size / ((hi - lo) * 1e-3) < 100.0:
            gamma_2ms.append(coincidence_gamma(tt, tp, 2.0, hi - lo))
    order_err = np.concatenate(order_err) if order_err else np.array([])
    out: dict[str, Any] = {
        "n_traces": int(len(rel)),
        "rel_l2_mean": float(rel.mean()),
        "rel_l2_median": float(np.median(rel)),
        "rel_l2_p95": float(np.quantile(rel, 0.95)),
        "spike_count_exact_match_rate": float(np.mean(n_pred == n_true)),
        "firing_mismatches": int(firing_mismatch.sum()),
        "firing_mismatch_rate": float(firing_mismatch.mean()),
        "spike_count_rel_error_firing": float(np.mean(np.abs(n_pred[both] - n_true[both]) / n_true[both]))
        if both.any() else None,
        "spike_time_error_median_ms": float(np.median(time_err)) if time_err.size else None,
        "spike_time_error_order_matched_median_ms": float(np.median(order_err)) if order_err.size else None,
        "gamma_1ms_median": float(np.median(gamma_1ms)) if gamma_1ms else None,
        "gamma_2ms_median_below_100Hz": float(np.median(gamma_2ms)) if gamma_2ms else None,
        "n_traces_both_firing": int(both.sum()),
    }
    out.update(voltage_metrics(pred, true, dt_ms, window_ms))
    # eFEL on a deterministic subset of traces where both fire (AP features) or all (passive)
    idx = np.linspace(0, len(rel) - 1, min(efel_limit, len(rel))).astype(int)
    errs: dict[str, list[float]] = {n: [] for n in EFEL_FEATURES}
    for i in np.unique(idx):
        amp = None if amps_nA is None else float(amps_nA[i])
        fp = efel_features(pred[i], dt_ms, window_ms[0], window_ms[1], amp)
        ft = efel_features(true[i], dt_ms, window_ms[0], window_ms[1], amp)
        for n in EFEL_FEATURES:
            if np.isfinite(fp[n]) and np.isfinite(ft[n]) and ft[n] != 0:
                errs[n].append(abs(fp[n] - ft[n]) / abs(ft[n]))
    out["efel_rel_error_median"] = {n: (float(np.median(v)) if v else None) for n, v in errs.items()}
    return out


#: samples this close to a spike (ms before, after) are the action potential, not the interspike trajectory
SPIKE_CUT_MS = (0.5, 2.0)
#: the after-step window (ms) of the subthreshold figure
AFTER_STEP_MS = 20.0


def voltage_metrics(pred: np.ndarray, true: np.ndarray, dt_ms: float, window_ms: tuple[float, float]) -> dict:
    """Median RMSE (mV) of predicted vs NEURON traces (N, L): whole trace and the `AFTER_STEP_MS` after the step
    on traces where NEURON does not fire; in the step with every action potential of either trace cut out
    (`SPIKE_CUT_MS`) on traces where both fire."""
    t = np.arange(true.shape[1]) * dt_ms
    after = (t >= window_ms[1]) & (t < window_ms[1] + AFTER_STEP_MS)
    in_step = (t >= window_ms[0]) & (t < window_ms[1])
    sub, post, between = [], [], []
    for p, v in zip(pred, true):
        st_true, st_pred = spike_times(v, dt_ms), spike_times(p, dt_ms)
        err = p.astype(np.float64) - v
        if st_true.size == 0:
            sub.append(np.sqrt(np.mean(err ** 2)))
            post.append(np.sqrt(np.mean(err[after] ** 2)))
        elif st_pred.size:
            keep = in_step.copy()
            for ts in np.concatenate([st_true, st_pred]):
                keep &= ~((t > ts - SPIKE_CUT_MS[0]) & (t < ts + SPIKE_CUT_MS[1]))
            if keep.any():
                between.append(np.sqrt(np.mean(err[keep] ** 2)))
    med = lambda x: float(np.median(x)) if x else None  # noqa: E731
    return {"subthreshold_rmse_mV_median": med(sub), "after_step_rmse_mV_median": med(post),
            "interspike_rmse_mV_median": med(between), "n_traces_subthreshold": len(sub)}


def _predict_rows(s: Surrogate, ds, rows: np.ndarray, feats: np.ndarray, batch_size: int | None, progress: bool,
                  measured: list | None = None):
    stim = ds.read(rows, "stimulus_nA")
    return s.predict(stim, feats[ds.model_index[rows]], ds.dt_ms, batch_size=batch_size, progress=progress,
                     measured=measured)


def _fi_points_groups(s: Surrogate, ds, rows: np.ndarray, feats: np.ndarray, window, efel_limit: int,
                      batch_size: int | None) -> tuple[dict[str, Any], list[dict]]:
    """Unseen models given their measured FI curve (`surrogate.measured`): the rates of every other amplitude of
    each model's steps (sorted) measured, the other half scored; beside it the same half from features alone.
    Also the scored half's FI curves given the measured ones (for the plot)."""
    from ..recordings.measure import measure_neuron
    from ..recordings.sweeps import StepSweeps
    from ..surrogate.measured import recorded_trains, trains_fi_curve
    from ..surrogate.step_trains import single_step

    scored, trains, neurons, plotted = [], {}, {}, []
    for m in np.unique(ds.model_index[rows]):
        mine = rows[ds.model_index[rows] == m]
        mine = mine[np.unique(ds.amp_nA[mine], return_index=True)[1]]  # one row per amplitude, ascending
        if mine.size < 4:  # too few to measure on half and score on the other
            continue
        volt = ds.read(mine[0::2])
        spikes = [spike_times(v, ds.dt_ms) - window[0] for v in volt]
        dur = single_step(ds.read(mine[-1:], "stimulus_nA")[0], ds.dt_ms)[2]  # as the samples give it
        trains[m] = recorded_trains(ds.amp_nA[mine[0::2]], [t[t >= 0] for t in spikes], dur)
        sweeps = StepSweeps.from_traces(ds.read(mine[0::2], "stimulus_nA"), volt, ds.dt_ms, ds.model_ids[m])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what it could not measure is in `filled`, logged here
            neurons[m] = measure_neuron(sweeps, s)
        if neurons[m].filled:
            log.info("%s measured on half its steps: %s from the training median", ds.model_ids[m], neurons[m].filled)
        scored.append(mine[1::2])
    if not scored:
        return {}, []
    scored = np.concatenate(scored)
    true = ds.read(scored)
    out = {}
    curves = {m: trains_fi_curve(t) for m, t in trains.items()}
    for name, given in (("unseen_models_fi_points", [curves[m] for m in ds.model_index[scored]]),
                        ("unseen_models_recorded_trains", [trains[m] for m in ds.model_index[scored]]),
                        ("unseen_models_fi_points_features_only", None)):
        pred = _predict_rows(s, ds, scored, feats, batch_size, False, given)
        out[name] = trace_metrics(pred, true, ds.dt_ms, window, efel_limit, ds.amp_nA[scored])
        fi = fi_and_rheobase(out[name], ds, scored, pred, true, window)
        plotted = fi if name == "unseen_models_fi_points" else plotted
    # measured on the same half of its sweeps with their voltage (recordings.measure): its own features, trains,
    # backbone and action potential: what a user with the detailed model (or a recording) at hand gets
    own = np.stack([neurons[m].feature_vector(s.config.feature_names) for m in ds.model_index[scored]])
    pred = s.predict(ds.read(scored, "stimulus_nA"), own, ds.dt_ms, batch_size=batch_size, check_domain=False,
                     measured=[neurons[m].measured for m in ds.model_index[scored]])
    out["unseen_models_own_cell"] = trace_metrics(pred, true, ds.dt_ms, window, efel_limit, ds.amp_nA[scored])
    fi_and_rheobase(out["unseen_models_own_cell"], ds, scored, pred, true, window)
    return out, plotted


def evaluate_surrogate(s: Surrogate, data_path: str | Path, *, val_every_kth_amplitude: int = 5,
                       batch_size: int | None = None, efel_limit: int = 200, progress: bool = True) -> dict[str, Any]:
    """Accuracy report of `s` on the Long Square rows of `data_path` (see module docstring)."""
    from ..training.data import heldout_mask

    ds = open_dataset(data_path)
    table = ds.features()
    if not table:
        raise ValueError(f"{data_path} has no /features table; run `noble-neuron features --data {data_path}`")
    names = table["names"]
    feats = table["values"][:, [names.index(n) for n in s.config.feature_names]]
    ls = ds.rows(kind="long_square")
    p0 = json.loads(ds.protocols_json[ds.protocol_index[ls[0]]])
    window = (p0["delay_ms"], p0["delay_ms"] + p0["dur_ms"])
    train_ids = set(s.train_model_ids)
    is_train = np.array([ds.model_ids[m] in train_ids for m in ds.model_index[ls]])
    held = heldout_mask(ds.amp_nA[ls], ds.model_index[ls], np.ones(ls.size, bool), val_every_kth_amplitude)
    groups = {
        "in_distribution": ls[is_train & held],
        "unseen_models": ls[np.array([ds.model_splits[m] == "unseen" for m in ds.model_index[ls]])],
    }
    report: dict[str, Any] = {"dataset": Path(data_path).name, "window_ms": window, "groups": {}}
    predictions = {}
    for group, rows in groups.items():
        if rows.size == 0:
            log.warning("no rows for group %s", group)
            continue
        pred = _predict_rows(s, ds, rows, feats, batch_size, progress)
        true = ds.read(rows)
        report["groups"][group] = trace_metrics(pred, true, ds.dt_ms, window, efel_limit, ds.amp_nA[rows])
        predictions[group] = (rows, pred, true)
    for group, (rows, pred, true) in predictions.items():
        curves = fi_and_rheobase(report["groups"][group], ds, rows, pred, true, window)
        if group == "unseen_models":
            report["fi_curves_unseen"] = curves
    if s.backbones and "in_distribution" in predictions:
        rows, _, true = predictions["in_distribution"]
        report["groups"]["in_distribution_interpolation"] = _interpolation_group(
            s, ds, rows, ls[is_train & ~held], feats, window, efel_limit)
        # the backbone's own ceiling: NEURON's spike times composed with it
        from ..surrogate.event_model import compose_voltage

        exact = compose_voltage(s, ds.read(rows, "stimulus_nA").astype(np.float64),
                                [spike_times(v, ds.dt_ms) for v in true], feats[ds.model_index[rows]])
        report["groups"]["in_distribution_true_spikes"] = trace_metrics(exact, true, ds.dt_ms, window, efel_limit,
                                                                       ds.amp_nA[rows])
    trains = s.backbones and any(b.trains is not None for b in s.backbones.values())
    if trains and "unseen_models" in predictions:
        groups, report["fi_curves_unseen_given_curve"] = _fi_points_groups(
            s, ds, predictions["unseen_models"][0], feats, window, efel_limit, batch_size)
        report["groups"].update(groups)
    if trains:
        # the network's own spike phase in place of the models' (and neighbours') step trains, for comparison
        s.use_own_step_trains = False
        try:
            for group, (rows, _, true) in predictions.items():
                learned = _predict_rows(s, ds, rows, feats, batch_size, progress)
                g = trace_metrics(learned, true, ds.dt_ms, window, efel_limit, ds.amp_nA[rows])
                g["fi_mean_abs_error_Hz"] = _fi_error_Hz(ds, rows, learned, true, window)
                report["groups"][f"{group}_learned_spikes"] = g
        finally:
            s.use_own_step_trains = True
    report["_predictions"] = predictions  # for plotting; stripped before JSON
    return report


def _fi_curves_per_model(ds, rows: np.ndarray, pred: np.ndarray, true: np.ndarray, window):
    """(model index, predicted FI curve, NEURON's FI curve) for each model among `rows` (traces (N, L) mV)."""
    for m in np.unique(ds.model_index[rows]):
        sel = ds.model_index[rows] == m
        amps = ds.amp_nA[rows][sel]
        yield (m, fi_curve(amps, pred[sel], ds.dt_ms, window[0], window[1] - window[0]),
               fi_curve(amps, true[sel], ds.dt_ms, window[0], window[1] - window[0]))


def fi_and_rheobase(g: dict[str, Any], ds, rows: np.ndarray, pred: np.ndarray, true: np.ndarray, window) -> list[dict]:
    """Into group `g`: the FI-curve error (Hz, mean over models) and the rheobase error (nA, median over models
    where both curves have one); returns the per-model FI curves (for the plots)."""
    fi_err, rheo_err, curves = [], [], []
    for m, fi_p, fi_t in _fi_curves_per_model(ds, rows, pred, true, window):
        fi_err.append(float(np.mean(np.abs(fi_p.rates_Hz - fi_t.rates_Hz))))
        try:
            rheo_err.append(abs(threshold_current(fi_p) - threshold_current(fi_t)))
        except ValueError:
            rheo_err.append(np.nan)
        curves.append({"model_id": ds.model_ids[m], "amps_nA": fi_t.amps_nA.tolist(),
                       "rates_true_Hz": fi_t.rates_Hz.tolist(), "rates_pred_Hz": fi_p.rates_Hz.tolist()})
    g["fi_mean_abs_error_Hz"] = float(np.mean(fi_err))
    rheo = np.asarray(rheo_err, dtype=float)
    g["rheobase_abs_error_nA_median"] = float(np.nanmedian(rheo)) if np.isfinite(rheo).any() else None
    g["rheobase_undefined_models"] = int(np.isnan(rheo).sum())
    return curves


def _fi_error_Hz(ds, rows: np.ndarray, pred: np.ndarray, true: np.ndarray, window) -> float:
    """Mean over models of the mean absolute FI-curve error (Hz) of predicted vs NEURON traces."""
    return float(np.mean([np.mean(np.abs(fi_p.rates_Hz - fi_t.rates_Hz))
                          for _, fi_p, fi_t in _fi_curves_per_model(ds, rows, pred, true, window)]))


def _interpolation_group(s: Surrogate, ds, rows: np.ndarray, train_rows: np.ndarray, feats: np.ndarray, window,
                         efel_limit: int) -> dict[str, Any]:
    """`trace_metrics` (+ FI error) of the interpolation baseline on the held-out rows `rows`."""
    from .interpolation import interpolation_baseline

    per_model = {}
    for m in np.unique(ds.model_index[rows]):
        own = train_rows[ds.model_index[train_rows] == m]
        per_model[m] = (ds.amp_nA[own], [spike_times(v, ds.dt_ms) for v in ds.read(own)])
    true = ds.read(rows)
    pred = interpolation_baseline(s, ds.read(rows, "stimulus_nA"), ds.amp_nA[rows], feats[ds.model_index[rows]],
                                  [per_model[m] for m in ds.model_index[rows]])
    out = trace_metrics(pred, true, ds.dt_ms, window, efel_limit, ds.amp_nA[rows])
    out["fi_mean_abs_error_Hz"] = _fi_error_Hz(ds, rows, pred, true, window)
    return out


def _sampled_distances(table: dict, splits, amps: np.ndarray, rates: dict, default: str) -> dict[str, Any]:
    """How far the sampled neurons' FI curves ({sampler: (N, A)}) lie from the unseen models' (`populations`),
    beside how far the training models' lie from them (the scale: a population of the family itself)."""
    from .populations import population_distances

    hof = {split: [(table["fi_amps_nA"][m], table["fi_rates_Hz"][m]) for m in range(len(splits)) if splits[m] == split]
           for split in ("train", "unseen")}
    if not hof["unseen"]:
        return {"what": "no unseen models in the dataset: nothing to compare the sampled neurons with"}
    return {"what": "per FI-curve statistic, the Wasserstein distance to the 10 unseen models' in units of their "
                    "standard deviation (evaluation/populations.py)", "n_sampled": int(len(rates[default])),
            "sampler": default, "sampled_vs_unseen": population_distances([(amps, r) for r in rates[default]],
                                                                          hof["unseen"]),
            **{f"{name}_vs_unseen": population_distances([(amps, r) for r in rr], hof["unseen"])
               for name, rr in rates.items()},
            "training_vs_unseen": population_distances(hof["train"], hof["unseen"])}


def _shown_path(path: str | Path) -> str:
    """A path as results JSON should hold it: relative to the working directory when inside it, else its name."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return p.name


def write_report(checkpoint: str | Path, data: str | Path, out_dir: str | Path, *, n_sampled: int = 50,
                 efel_limit: int = 200, progress: bool = True, record: bool = False) -> dict[str, Any]:
    """Evaluate `checkpoint` on `data`; write accuracy.json + PNGs into `out_dir`; return the JSON dict.

    ``record=True`` also stores the headline figures in the checkpoint (``metrics["evaluation"]``),
    where `Surrogate.whole_trace_caveat` reads them (SurrogateCell warns when they are far off)."""
    import time

    from ..surrogate.checkpoint import load_surrogate, save_surrogate
    from ..features.ephys import fi_curve
    from .machine import machine_info
    from .plots import plot_fi_comparison, plot_fi_curves, plot_trace_comparison
    from ..stimuli.presets import long_square_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = load_surrogate(checkpoint)
    start = time.perf_counter()
    report = evaluate_surrogate(s, data, efel_limit=efel_limit, progress=progress)
    preds = report.pop("_predictions")
    ds = open_dataset(data)
    t = np.arange(ds.attrs["n_samples"]) * ds.dt_ms

    pairs = []
    for group in ("in_distribution", "unseen_models"):
        if group in preds:
            rows, pred, true = preds[group]
            for i in np.linspace(0, len(rows) - 1, 3).astype(int):
                mid = ds.model_ids[ds.model_index[rows[i]]]
                pairs.append((f"{group}: {mid}, {ds.amp_nA[rows[i]] * 1e3:.0f} pA", true[i], pred[i]))
    plot_trace_comparison(t, pairs, out / "accuracy_traces.png")
    if "fi_curves_unseen" in report:
        plot_fi_comparison(report["fi_curves_unseen"], out / "accuracy_fi_unseen.png",
                           report.get("fi_curves_unseen_given_curve"))

    # ensembles: new neurons of the family, as `SurrogateCell.sample` draws them (its population's neurons where the
    # checkpoint carries reference neurons; features inside the population's hull, NOBLE's latent sampling, beside)
    p0 = json.loads(ds.protocols_json[ds.protocol_index[ds.rows(kind="long_square")[0]]])
    lo, hi = s.amp_range_nA
    # 10 pA apart: a stuttering-to-tonic jump is resolved as finely as the statistics compare it
    grid = long_square_grid(np.arange(lo, hi + 1e-9, 0.01), delay_ms=p0["delay_ms"], dur_ms=p0["dur_ms"],
                            total_ms=p0["total_ms"])
    stim = np.stack([p.render(ds.dt_ms) for p in grid])
    amps = np.array([p.step_nA for p in grid])
    samplers = {"hull": (s.sample_features(n_sampled, seed=0), None)}
    if s.references:
        from ..surrogate.references import sample_references

        picked = [s.references[r] for r in sample_references(s.references, min(n_sampled, len(s.references)))]
        samplers["population"] = (np.stack([r.features for r in picked]), [r.trains for r in picked])
    rates = {}
    for name, (feats_s, trains) in samplers.items():
        v = s.predict(np.tile(stim, (len(feats_s), 1)), np.repeat(feats_s, len(grid), axis=0), ds.dt_ms,
                      check_domain=False, measured=None if trains is None else [t for t in trains for _ in grid])
        rates[name] = np.stack([fi_curve(amps, v[i * len(grid):(i + 1) * len(grid)], ds.dt_ms, p0["delay_ms"],
                                         p0["dur_ms"]).rates_Hz for i in range(len(feats_s))])
    default = "population" if "population" in samplers else "hull"
    sampled = samplers[default][0]
    table = ds.features()
    plot_fi_curves(list(table["fi_amps_nA"]) + [amps] * len(sampled),
                   list(table["fi_rates_Hz"]) + list(rates[default]),
                   list(ds.model_splits) + ["sampled"] * len(sampled), out / "accuracy_sampled_fi.png",
                   title=f"HoF models vs {len(sampled)} sampled surrogate neurons "
                         f"({'population neurons' if default == 'population' else 'in the feature hull'})")
    report["sampled_neurons"] = _sampled_distances(table, ds.model_splits, amps, rates, default)

    g = report["groups"]
    result = {
        "checkpoint": _shown_path(checkpoint),
        "model": {"config": s.config.to_dict(), "train_metrics": {k: v for k, v in s.metrics.items()
                                                               if isinstance(v, (int, float, str))}},
        "rel_l2_in_distribution": g.get("in_distribution", {}).get("rel_l2_mean"),
        "rel_l2_unseen_models": g.get("unseen_models", {}).get("rel_l2_mean"),
        "spike_count_exact_match_rate_in_distribution": g.get("in_distribution", {}).get("spike_count_exact_match_rate"),
        "spike_count_exact_match_rate_unseen_models": g.get("unseen_models", {}).get("spike_count_exact_match_rate"),
        "median_spike_time_error_ms_unseen_models": g.get("unseen_models", {}).get("spike_time_error_median_ms"),
        "rheobase_abs_error_nA_median_unseen_models": g.get("unseen_models", {}).get("rheobase_abs_error_nA_median"),
        "fi_mean_abs_error_Hz_unseen_models": g.get("unseen_models", {}).get("fi_mean_abs_error_Hz"),
        **{f"{key}_{group}": g.get(group, {}).get(key) for group in GROUPS
           for key in ("rel_l2_mean", "spike_count_rel_error_firing", "spike_time_error_order_matched_median_ms",
                       "gamma_1ms_median", "gamma_2ms_median_below_100Hz", "fi_mean_abs_error_Hz",
                       "rheobase_abs_error_nA_median", "firing_mismatch_rate", "subthreshold_rmse_mV_median",
                       "after_step_rmse_mV_median", "interspike_rmse_mV_median")},
        **{f"{feat}_rel_error_{group}": (g.get(group, {}).get("efel_rel_error_median") or {}).get(feat)
           for group in GROUPS for feat in ("AP1_width", "mean_AP_amplitude", "AHP_depth")},
        "targets": {"rel_l2_in_distribution": 0.02, "rel_l2_unseen_models": 0.08,
                    "spike_count_rel_error_firing": {"in_distribution": 0.02, "unseen_models": 0.08},
                    "spike_time_error_order_matched_median_ms": {"in_distribution": 1.0, "unseen_models": 3.0},
                    "gamma_1ms_median": {"in_distribution": 0.9, "unseen_models": 0.7},
                    "fi_mean_abs_error_Hz": {"in_distribution": 1.5, "unseen_models": 6.0},
                    "subthreshold_rmse_mV": 0.3, "after_step_rmse_mV": 0.3, "interspike_rmse_mV": 1.0,
                    "AHP_depth_rel_error": 0.10,
                    "rheobase_abs_error_nA": 0.010, "firing_mismatch_rate": 0.02, "ap_shape_rel_error": 0.10,
                    "noble_reported": {"rel_l2_in_distribution": [0.019, 0.022], "rel_l2_unseen_models": 0.117,
                                       "spike_count_error": 0.03, "AP1_width_error": [0.27, 0.33]}},
        "groups": g,
        "fi_curves_unseen": report.get("fi_curves_unseen"),
        "sampled_neurons": {"n": int(len(sampled)), "features": sampled.tolist(), **report["sampled_neurons"]},
        "wall_s": time.perf_counter() - start,
        "machine": machine_info(),
    }
    (out / "accuracy.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "sampled_neurons.json").write_text(json.dumps(
        {**result["sampled_neurons"], "png": "accuracy_sampled_fi.png", "checkpoint": result["checkpoint"],
         "machine": result["machine"]}, indent=1) + "\n")
    if record:
        s.metrics["evaluation"] = {k: result[k] for k in HEADLINE_KEYS} | {"dataset": Path(data).name}
        save_surrogate(s, checkpoint)
    return result


GROUPS = ("in_distribution", "unseen_models", "in_distribution_interpolation", "in_distribution_true_spikes",
          "in_distribution_learned_spikes", "unseen_models_learned_spikes", "unseen_models_fi_points",
          "unseen_models_recorded_trains", "unseen_models_fi_points_features_only", "unseen_models_own_cell")
HEADLINE_KEYS = ("rel_l2_in_distribution", "rel_l2_unseen_models", "spike_count_exact_match_rate_in_distribution",
                 "spike_count_exact_match_rate_unseen_models", "median_spike_time_error_ms_unseen_models",
                 "rheobase_abs_error_nA_median_unseen_models", "fi_mean_abs_error_Hz_unseen_models",
                 *(f"{key}_{group}" for group in ("in_distribution", "unseen_models")
                   for key in ("spike_count_rel_error_firing", "spike_time_error_order_matched_median_ms",
                               "gamma_1ms_median", "gamma_2ms_median_below_100Hz", "fi_mean_abs_error_Hz",
                               "rheobase_abs_error_nA_median", "firing_mismatch_rate", "AP1_width_rel_error",
                               "mean_AP_amplitude_rel_error", "AHP_depth_rel_error", "subthreshold_rmse_mV_median",
                               "after_step_rmse_mV_median", "interspike_rmse_mV_median")),
                 # unseen models given their measured FI points, and the same rows from features alone
                 *(f"{key}_unseen_models_{given}"
                   for given in ("fi_points", "recorded_trains", "fi_points_features_only", "own_cell")
                   for key in ("spike_count_rel_error_firing", "fi_mean_abs_error_Hz", "gamma_1ms_median",
                               "rheobase_abs_error_nA_median")),
                 *(f"{key}_unseen_models_own_cell" for key in ("rel_l2_mean", "subthreshold_rmse_mV_median",
                                                               "interspike_rmse_mV_median", "AHP_depth_rel_error")),
                 # the network's own spike phase, where step trains answer in its place
                 *(f"{key}_{group}_learned_spikes" for group in ("in_distribution", "unseen_models")
                   for key in ("rel_l2_mean", "spike_count_rel_error_firing", "firing_mismatch_rate")))
