"""Per-model feature table of a dataset: FI curve, I_thr, s_thr, input resistance, eFEL.

Reads the Long Square rows of each model from an HDF5 dataset, computes
`features.model_features`, and stores the table under ``/features`` in the same file:
``names`` (F,), ``values`` (M, F) float64 (NaN where undefined), ``fi_amps_nA`` /
``fi_rates_Hz`` (M, P) and ``json`` (M,) with each model's full feature dict.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..data.dataset import open_h5, open_dataset
from .ephys import model_features
from ..stimuli.protocols import protocol_from_dict

__all__ = ["SCALAR_FEATURES", "copy_features", "extract_features", "pin_features"]

log = logging.getLogger(__name__)


def extract_features(path: str | Path, progress: bool = True) -> dict:
    """Compute and store the feature table of dataset `path`; return it as a dict of arrays."""
    from tqdm import tqdm

    ds = open_dataset(path)
    if not ds.done.all():
        raise ValueError(f"{path} is incomplete: {int((~ds.done).sum())} of {ds.done.size} simulations are missing; "
                         "rerun the same `noble-neuron generate` command to finish it first")
    ls_rows = ds.rows(kind="long_square")
    if ls_rows.size == 0:
        raise ValueError(f"{path} has no finished Long Square rows; features need Long Square steps")
    protocols = [protocol_from_dict(json.loads(p)) for p in ds.protocols_json]
    ls_amps = np.unique(ds.amp_nA[ls_rows])
    per_model, scalar_names = [], None
    for m, model_id in enumerate(tqdm(ds.model_ids, disable=not progress, desc="features", unit="model")):
        rows = ls_rows[ds.model_index[ls_rows] == m]
        if rows.size == 0:
            per_model.append({"error": "no Long Square rows"})
            continue
        p0 = protocols[ds.protocol_index[rows[0]]]
        try:
            feats = model_features(ds.amp_nA[rows], ds.read(rows), ds.dt_ms,
                                   stim_start_ms=p0.delay_ms, stim_dur_ms=p0.dur_ms)
        except ValueError as exc:
            log.warning("%s: features undefined (%s)", model_id, exc)
            feats = {"error": str(exc)}
        per_model.append(feats)
        if scalar_names is None and "error" not in feats:
            scalar_names = [k for k, v in feats.items() if not isinstance(v, list)]
    if scalar_names is None:
        raise ValueError(f"{path}: no model fires in the tested amplitude range (up to {ls_amps.max():.3g} nA); "
                         "regenerate with `--protocol adaptive` (amplitudes relative to each model's rheobase) or "
                         "extend the amplitude grid")
    values = np.array([[np.nan if f.get(k) is None else f.get(k, np.nan) for k in scalar_names] for f in per_model],
                      dtype=float)
    fi_rates = np.full((len(per_model), ls_amps.size), np.nan)
    for m, f in enumerate(per_model):
        for a, r in zip(f.get("fi_amps_nA", []), f.get("fi_rates_Hz", [])):
            fi_rates[m, np.argmin(np.abs(ls_amps - a))] = r
    _store(path, scalar_names, values, np.tile(ls_amps, (len(per_model), 1)), fi_rates,
           [json.dumps(x) for x in per_model])
    return {"names": scalar_names, "values": values, "fi_amps_nA": ls_amps, "fi_rates_Hz": fi_rates,
            "model_ids": ds.model_ids, "splits": ds.model_splits}


SCALAR_FEATURES = ("I_thr_nA", "s_thr_Hz_per_nA", "input_resistance_MOhm")


def _store(path, names, values, fi_amps, fi_rates, per_model_json) -> None:
    import h5py

    with open_h5(Path(path), "r+") as f:
        if "features" in f:
            del f["features"]
        g = f.create_group("features")
        g.create_dataset("names", data=list(names), dtype=h5py.string_dtype())
        g.create_dataset("values", data=values)
        g.create_dataset("fi_amps_nA", data=fi_amps)
        g.create_dataset("fi_rates_Hz", data=fi_rates)
        g.create_dataset("json", data=per_model_json, dtype=h5py.string_dtype())


def features_of_dataset(source: str | Path) -> tuple[list[str], dict[str, list[float]]]:
    """(feature names, {model id: values}) of a dataset's /features table."""
    src = open_dataset(source)
    feats = src.features()
    if not feats:
        raise ValueError(f"{source} has no /features table to copy")
    return list(feats["names"]), dict(zip(src.model_ids, feats["values"].tolist()))


def copy_features(source: str | Path, path: str | Path, *, names: list[str] | None = None,
                  table: dict[str, list[float]] | None = None) -> dict:
    """Give dataset `path` the per-model features of another dataset of the same models (or the
    ``names`` and per-model ``table`` given, e.g. read from a checkpoint by the CLI).

    A dataset without a fine Long Square grid (e.g. noise protocols for network mode) cannot
    measure I_thr and s_thr itself; copying them from the dataset the whole-trace surrogate
    was trained on keeps one definition of each neuron's features across checkpoints.
    Models missing from `source` raise ValueError.
    """
    ds = open_dataset(path)
    if table is None:
        names, table = features_of_dataset(source)
    missing = [m for m in ds.model_ids if m not in table]
    if missing:
        raise ValueError(f"{source} has no features for model(s) {missing[:5]} of {path}")
    values = np.array([table[m] for m in ds.model_ids], dtype=float)
    n = len(ds.model_ids)
    _store(path, names, values, np.zeros((n, 0)), np.zeros((n, 0)),
           [json.dumps({"copied_from": str(source)})] * n)
    return {"names": names, "values": values, "model_ids": ds.model_ids}


def pin_features(path: str | Path, names: list[str], table: dict[str, list[float]]) -> dict:
    """Overwrite the columns `names` of dataset `path`'s measured /features table with `table`
    ({model id: values}, e.g. a checkpoint's), keeping every other measured column.

    A checkpoint's I_thr and s_thr come from a fine amplitude grid; a dataset of continuous
    draws measures them coarsely but gives the other features (input resistance, eFEL, rates
    far above threshold). Pinning keeps one definition of the checkpoint's features while a new
    feature set adds to them. Models or names the table lacks raise ValueError.
    """
    ds = open_dataset(path)
    feats = ds.features()
    if not feats:
        raise ValueError(f"{path} has no /features table to pin; run `noble-neuron features --data {path}` first")
    missing = [m for m in ds.model_ids if m not in table]
    if missing:
        raise ValueError(f"the pinned table has no features for model(s) {missing[:5]} of {path}")
    values = np.array(feats["values"], dtype=float)
    cols = list(feats["names"])
    for j, name in enumerate(names):
        if name not in cols:
            raise ValueError(f"{path} has no measured feature {name!r} to pin (has {cols})")
        values[:, cols.index(name)] = [table[m][j] for m in ds.model_ids]
    with open_h5(Path(path), "r") as f:
        per_model_json = [s.decode() if isinstance(s, bytes) else s for s in f["features/json"][:]]
    _store(path, cols, values, feats["fi_amps_nA"], feats["fi_rates_Hz"], per_model_json)
    return {"names": cols, "values": values, "model_ids": ds.model_ids}
