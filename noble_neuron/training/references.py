"""Adding reference neurons to a whole-trace checkpoint (``noble-neuron add-references``).

The models of a dataset the checkpoint was not trained on (a population from ``noble-neuron build-population``)
are kept by their features and step trains (`noble_neuron.surrogate.references`), so that neurons given by
features borrow trains from a denser set of neighbours. No training: seconds per hundred models.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

__all__ = ["SHIPPED_FEATURE_PROTOCOL", "add_references", "features_on_protocol"]

#: the amplitude protocol the shipped checkpoint's features were measured on (pv_draws48.h5: 48 draws per model)
SHIPPED_FEATURE_PROTOCOL = "train_draws_48"

log = logging.getLogger(__name__)


def features_on_protocol(names: list[str], amps_nA: np.ndarray, traces_mV: np.ndarray, trains, dt_ms: float,
                         protocol_amps_nA: np.ndarray, stim_start_ms: float, stim_dur_ms: float) -> np.ndarray:
    """A neuron's features `names` (raw) as another amplitude protocol would have measured them.

    Features depend on the protocol, not only on the cell: the 60 family models measured on 16 of their 48 draws
    move I_thr by +11 pA and the rate at 2 × I_thr by +22 Hz (a coarser grid finds the first firing step later), and
    neighbours chosen on such features fire trains 13 points further off (docs/surrogate.md). So the FI features
    (I_thr, s_thr, rates at k × I_thr) are measured on `protocol_amps_nA` (nA), reading the neuron's interpolated
    step trains (`StepTrains`) there (on the family: I_thr bias −0.5 pA, rate at 2 × I_thr −3 Hz); the passive
    eFEL features on its most negative step, as `model_features` does; the spiking ones (AP1_width) as the median
    over its firing traces (`traces_mV` (N, L) mV at `amps_nA`): one trace's value scatters by ±0.1 ms between
    neighbouring amplitudes, so a single-trace reading moves a neuron across its neighbours at random."""
    from ..features.ephys import (FICurve, SUBTHRESHOLD_EFEL_FEATURES, efel_features, model_features, rate_at,
                                  threshold_current, threshold_slope)
    from ..features.spikes import count_spikes

    efel_names = [n[5:] for n in names if n.startswith("efel.")]
    spiking = [n for n in efel_names if n not in SUBTHRESHOLD_EFEL_FEATURES]  # measured below, on every firing trace
    own = model_features(amps_nA, traces_mV, dt_ms, stim_start_ms=stim_start_ms, stim_dur_ms=stim_dur_ms,
                         efel_names=[n for n in efel_names if n not in spiking])
    grid = np.sort(protocol_amps_nA[(protocol_amps_nA >= trains.amps_nA[0]) & (protocol_amps_nA <= trains.amps_nA[-1])])
    rates = [trains.train(a, min(stim_dur_ms, trains.dur_ms)).size / (stim_dur_ms * 1e-3) if a > 0 else 0.0
             for a in grid]
    fi = FICurve(grid, np.asarray(rates))
    i_thr = threshold_current(fi)
    out = dict(own) | {"I_thr_nA": i_thr, "s_thr_Hz_per_nA": threshold_slope(fi, i_thr, n_points=3, window_nA=0.1)}
    for name in names:
        if name.startswith("rate_at_") and name.endswith("x_I_thr_Hz"):
            out[name] = rate_at(fi, float(name[len("rate_at_"):-len("x_I_thr_Hz")]) * i_thr)
    window = (stim_start_ms, stim_start_ms + stim_dur_ms)
    firing = [i for i, v in enumerate(traces_mV) if count_spikes(v, dt_ms, window_ms=window)]
    if spiking and firing:
        got = [efel_features(traces_mV[i], dt_ms, stim_start_ms, stim_start_ms + stim_dur_ms, float(amps_nA[i]),
                             spiking) for i in firing]
        for k in spiking:
            values = np.array([g[k] for g in got], dtype=float)
            out[f"efel.{k}"] = float(np.median(values[np.isfinite(values)])) if np.isfinite(values).any() else None
    return np.array([np.nan if out.get(n) is None else float(out[n]) for n in names])


def add_references(checkpoint: str | Path, data_paths: list[str | Path], out_path: str | Path | None = None,
                   replace: bool = False, feature_protocol: str | None = None) -> Path:
    """Store every model of `data_paths` (datasets with a feature table) as a reference neuron of `checkpoint`
    and write it to `out_path` (default: in place). Refused: a model the checkpoint already knows (its training
    or held-out models: a held-out one would leak into its own benchmark), a dataset at another dt or without
    the checkpoint's features. `replace` drops the references already stored. `feature_protocol`: the per-model
    preset (`stimuli.presets.PER_MODEL_PRESETS`) the checkpoint's own features were measured on, on which the
    references' features are measured too (`features_on_protocol`; the shipped checkpoint's: `SHIPPED_FEATURE_PROTOCOL`);
    None: as the dataset's feature table has them (right when the references were simulated on that same protocol)."""
    from ..data.dataset import open_dataset
    from ..features.spikes import spike_times
    from ..surrogate.checkpoint import load_checkpoint, save_surrogate
    from ..surrogate.model import Surrogate
    from ..surrogate.references import fit_reference

    ckpt = load_checkpoint(checkpoint)
    s = Surrogate.from_metadata(dict(ckpt["metadata"]), ckpt["state_dict"], device="cpu")
    if not s.config.is_event_model:
        raise ValueError(f"{checkpoint} is not a whole-trace event model; only those borrow neighbours' step trains")
    names = list(s.config.feature_names)
    references = {} if replace else dict(s.references)
    held_out = {m for m, e in s.model_features.items() if e.get("split") == "unseen"}
    protocol = None
    if feature_protocol is not None:
        from ..stimuli.presets import PER_MODEL_PRESETS

        if feature_protocol not in PER_MODEL_PRESETS:
            raise ValueError(f"feature_protocol {feature_protocol!r} is not a per-model preset; choose one of "
                             f"{sorted(PER_MODEL_PRESETS)} or None")
        protocol = PER_MODEL_PRESETS[feature_protocol]
    for path in data_paths:
        ds = open_dataset(path)
        if abs(ds.dt_ms - s.dt_ms) > 1e-9:
            raise ValueError(f"{path} is sampled at {ds.dt_ms} ms, the checkpoint at {s.dt_ms} ms")
        table = ds.features()
        if not table:
            raise ValueError(f"{path} has no feature table; run `noble-neuron features --data {path}` first")
        missing = [n for n in names if n not in table["names"]]
        if missing:
            raise ValueError(f"{path}'s feature table lacks {missing}, which {checkpoint} uses; rerun "
                             f"`noble-neuron features --data {path}` with this version")
        known = sorted(set(ds.model_ids) & set(s.model_features))
        if known:
            leak = sorted(set(known) & held_out)
            raise ValueError(f"{path} holds models {known[:5]} that {checkpoint} already knows"
                             + (f", {leak[:5]} among its held-out models (as references they would leak into their "
                                f"own benchmark)" if leak else "") + "; references must be other neurons")
        cols = [table["names"].index(n) for n in names]
        rows = ds.rows(kind="long_square")
        skipped = 0
        for m, model_id in enumerate(ds.model_ids):
            feats = np.asarray(table["values"][m, cols], dtype=float)
            own = rows[ds.model_index[rows] == m]
            if not np.isfinite(feats).all() or own.size < 2:
                skipped += 1
                continue
            stim, volt = ds.read(own, "stimulus_nA"), ds.read(own, "voltage_mV")
            ref = fit_reference(stim, [spike_times(v, ds.dt_ms) for v in volt], ds.dt_ms, feats)
            if ref is not None and protocol is not None:
                ref.features = _on_protocol(names, ds, own, volt, ref.trains, protocol(m))
            if ref is None or not np.isfinite(ref.features).all():
                skipped += 1
                continue
            references[model_id] = ref
        log.info("%s: %d reference neurons (%d skipped: undefined features or fewer than 2 steps)", path,
                 len(ds.model_ids) - skipped, skipped)
    s.references = references
    s.metrics["references"] = {"n": len(references), "feature_protocol": feature_protocol,
                               "data": [Path(p).name for p in data_paths]}
    return save_surrogate(s, out_path if out_path is not None else checkpoint)


def _on_protocol(names: list[str], ds, rows: np.ndarray, volt: np.ndarray, trains, protocol_steps: list) -> np.ndarray:
    """`features_on_protocol` for dataset rows of one model (Long Square steps of one delay and duration)."""
    import json

    from ..stimuli.protocols import protocol_from_dict

    first = protocol_from_dict(json.loads(ds.protocols_json[ds.protocol_index[rows[0]]]))
    amps = np.array([p.step_nA for p in protocol_steps])
    try:
        return features_on_protocol(names, ds.amp_nA[rows], volt, trains, ds.dt_ms, amps, first.delay_ms,
                                    first.dur_ms)
    except ValueError as exc:  # it does not fire on the protocol's amplitudes
        log.warning("%s: no features on the checkpoint's protocol (%s)", ds.model_ids[ds.model_index[rows[0]]], exc)
        return np.full(len(names), np.nan)
