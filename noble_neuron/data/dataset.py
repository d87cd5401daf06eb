"""The HDF5 dataset format: traces, stimuli, model ids, dt, units and provenance.

One row per (model, protocol) simulation, model-major. Rows are pre-allocated (NaN) and
marked in ``done`` once written, so a partly generated file is always readable and a
resumed run knows what is left. numpy/h5py only: no NEURON here.

Layout::

    /voltage_mV      (N, L) float32   somatic voltage
    /stimulus_nA     (N, L) float32   injected current
    /done            (N,)  uint8      1 once the row is written
    /model_index     (N,)  int32      row → /models/*
    /protocol_index  (N,)  int32      row → /protocols/json
    /amp_nA          (N,)  float64    characteristic amplitude (step amplitude for Long Square)
    /wall_s          (N,)  float32    NEURON wall time of the simulation
    /models/ids, /models/split, /models/parameters_json   (M,) strings
    /models/v_init_mV, /models/rheobase_nA                (M,) float64, NaN = not calibrated
                     (the initial voltage used, e.g. the rest found by a pre-run; the rheobase search)
    /protocols/json  (P,) strings
    /features/...    per-model features (written by `noble_neuron.features.ephys.store_features`)
    attrs: format, schema_version, dt_ms, sim_dt_ms, downsample, n_samples, units, signature,
           complete, and provenance (template, hashes, NEURON / noble_neuron versions).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ..errors import DatasetError, DatasetBusyError  # noqa: F401 (raised here, defined in errors)

__all__ = ["DATASET_FORMAT", "SCHEMA_VERSION", "DatasetBusyError", "DatasetError", "TraceDataset", "create_dataset", "open_dataset"]

log = logging.getLogger(__name__)

DATASET_FORMAT = "noble_neuron.dataset"
SCHEMA_VERSION = 1
UNITS = {"voltage": "mV", "stimulus": "nA", "time": "ms", "amplitude": "nA", "wall": "s"}
_STR = None  # set lazily to h5py.string_dtype()


def _h5py():
    import h5py

    global _STR
    _STR = h5py.string_dtype()
    return h5py


def create_dataset(
    path: str | Path,
    *,
    n_samples: int,
    dt_ms: float,
    model_ids: Sequence[str],
    model_splits: Sequence[str],
    model_parameters: Sequence[dict],
    protocol_json: Sequence[str],
    row_model: np.ndarray,
    row_protocol: np.ndarray,
    row_amp_nA: np.ndarray,
    attrs: dict[str, Any],
    model_v_init_mV: Sequence[float] | None = None,
    model_rheobase_nA: Sequence[float] | None = None,
) -> None:
    """Create an empty (all rows pending) dataset file at `path` (must not exist)."""
    h5py = _h5py()
    path = Path(path)
    if path.exists():
        raise DatasetError(f"{path} already exists; refusing to overwrite it")
    n_rows = len(row_model)
    tmp = path.with_name(path.name + ".creating")
    with h5py.File(tmp, "w") as f:
        for name in ("voltage_mV", "stimulus_nA"):
            f.create_dataset(
                name, shape=(n_rows, n_samples), dtype="f4", chunks=(1, n_samples),
                fillvalue=np.nan, compression="lzf",
            )
        f.create_dataset("done", data=np.zeros(n_rows, dtype="u1"))
        f.create_dataset("model_index", data=np.asarray(row_model, dtype="i4"))
        f.create_dataset("protocol_index", data=np.asarray(row_protocol, dtype="i4"))
        f.create_dataset("amp_nA", data=np.asarray(row_amp_nA, dtype="f8"))
        f.create_dataset("wall_s", data=np.full(n_rows, np.nan, dtype="f4"))
        g = f.create_group("models")
        g.create_dataset("ids", data=list(model_ids), dtype=_STR)
        g.create_dataset("split", data=list(model_splits), dtype=_STR)
        g.create_dataset("parameters_json", data=[json.dumps(p, sort_keys=True) for p in model_parameters], dtype=_STR)
        for name, values in (("v_init_mV", model_v_init_mV), ("rheobase_nA", model_rheobase_nA)):
            g.create_dataset(name, data=np.full(len(model_ids), np.nan) if values is None
                             else np.asarray([np.nan if v is None else v for v in values], dtype="f8"))
        f.create_group("protocols").create_dataset("json", data=list(protocol_json), dtype=_STR)
        f.attrs.update(
            format=DATASET_FORMAT, schema_version=SCHEMA_VERSION, dt_ms=float(dt_ms), n_samples=int(n_samples),
            units=json.dumps(UNITS), complete=False,
        )
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, (int, float, str, bool, np.number)) else json.dumps(value)
    tmp.replace(path)  # a half-created file never carries the final name


def open_h5(path: Path, mode: str):
    h5py = _h5py()
    if not path.is_file():
        raise DatasetError(f"dataset {path} is a folder, not a dataset file" if path.is_dir() else
                           f"dataset {path} does not exist")
    if mode != "r" and not os.access(path, os.W_OK):
        raise DatasetError(f"dataset {path} is read-only (no write permission); it needs writing here: make it "
                           f"writable (chmod u+w) or work on a copy")
    try:
        f = h5py.File(path, mode)
    except OSError as exc:
        if "unable to lock file" in str(exc) or getattr(exc, "errno", None) in (11, 35):
            raise DatasetBusyError(
                f"dataset {path} is open in another process (HDF5 file lock: {exc}); wait until that process "
                "(e.g. a running `noble-neuron generate`) finishes") from None
        if "Permission denied" in str(exc) or getattr(exc, "errno", None) in (1, 13):
            raise DatasetError(f"dataset {path} cannot be opened for {'writing' if mode != 'r' else 'reading'} "
                               f"(permission denied: {exc}); fix its permissions or work on a copy") from None
        raise DatasetError(f"dataset {path} is corrupt or truncated (HDF5 could not open it: {exc})") from None
    fmt = f.attrs.get("format")
    if fmt != DATASET_FORMAT:
        f.close()
        raise DatasetError(f"{path} is an HDF5 file but not a noble_neuron dataset (format={fmt!r})")
    version = int(f.attrs.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        f.close()
        raise DatasetError(
            f"{path} has dataset schema version {version}; this noble_neuron reads version {SCHEMA_VERSION}. "
            "Regenerate it with `noble-neuron generate`."
        )
    for name in ("voltage_mV", "stimulus_nA", "done", "model_index", "protocol_index", "amp_nA", "models/ids"):
        if name not in f:
            f.close()
            raise DatasetError(f"dataset {path} is missing '{name}' (truncated or written by another tool)")
    return f


@dataclass
class TraceDataset:
    """Read access to a dataset file (numpy arrays; loads lazily from HDF5)."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        with open_h5(self.path, "r") as f:
            self.attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            self.done = f["done"][:].astype(bool)
            self.model_index = f["model_index"][:]
            self.protocol_index = f["protocol_index"][:]
            self.amp_nA = f["amp_nA"][:]
            self.wall_s = f["wall_s"][:] if "wall_s" in f else None
            self.model_ids = [s.decode() if isinstance(s, bytes) else s for s in f["models/ids"][:]]
            self.model_splits = [s.decode() if isinstance(s, bytes) else s for s in f["models/split"][:]]
            self.model_parameters = [json.loads(s) for s in f["models/parameters_json"][:]]
            self.protocols_json = [s.decode() if isinstance(s, bytes) else s for s in f["protocols/json"][:]]
            n = len(self.model_ids)
            self.model_v_init_mV = f["models/v_init_mV"][:] if "models/v_init_mV" in f else np.full(n, np.nan)
            self.model_rheobase_nA = f["models/rheobase_nA"][:] if "models/rheobase_nA" in f else np.full(n, np.nan)

    @property
    def dt_ms(self) -> float:
        return float(self.attrs["dt_ms"])

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete", False)) and bool(self.done.all())

    def __len__(self) -> int:
        return int(self.done.sum())

    def rows(self, model_id: str | None = None, kind: str | None = None, only_done: bool = True) -> np.ndarray:
        """Row indices, optionally restricted to one model and/or one protocol kind."""
        mask = self.done.copy() if only_done else np.ones_like(self.done)
        if model_id is not None:
            if model_id not in self.model_ids:
                raise KeyError(f"model {model_id!r} is not in {self.path}; known: {self.model_ids[:5]}…")
            mask &= self.model_index == self.model_ids.index(model_id)
        if kind is not None:
            mask &= self.row_kinds() == kind
        return np.flatnonzero(mask)

    def protocol_kinds(self) -> list[str]:
        """The kind ('long_square', 'ou_noise', ...) of each stored protocol."""
        return [json.loads(p)["kind"] for p in self.protocols_json]

    def row_kinds(self) -> np.ndarray:
        """(N,) the protocol kind of every row."""
        return np.array(self.protocol_kinds())[self.protocol_index]

    def read(self, rows: Sequence[int] | np.ndarray, what: str = "voltage_mV") -> np.ndarray:
        """(len(rows), L) float32 array of `what` ('voltage_mV' or 'stimulus_nA')."""
        rows = np.asarray(rows, dtype=int)
        if rows.size and not self.done[rows].all():
            raise DatasetError(f"rows {rows[~self.done[rows]][:5].tolist()} of {self.path} are not generated yet")
        with open_h5(self.path, "r") as f:
            order = np.argsort(rows)
            out = np.empty((rows.size, int(self.attrs["n_samples"])), dtype=np.float32)
            if rows.size:
                out[order] = f[what][rows[order]]
        return out

    def features(self) -> dict[str, Any]:
        """Per-model features stored by `store_features` ({} if none)."""
        with open_h5(self.path, "r") as f:
            if "features" not in f:
                return {}
            g = f["features"]
            return {
                "names": [s.decode() if isinstance(s, bytes) else s for s in g["names"][:]],
                "values": g["values"][:],
                "fi_amps_nA": g["fi_amps_nA"][:],
                "fi_rates_Hz": g["fi_rates_Hz"][:],
            }


def open_dataset(path: str | Path) -> TraceDataset:
    """Open a dataset for reading; clear DatasetError if missing, corrupt or of another schema."""
    return TraceDataset(Path(path))
