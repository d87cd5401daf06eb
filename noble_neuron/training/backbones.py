"""Giving a trained whole-trace event checkpoint its physics backbones (``noble-neuron fit-backbone``).

Training fits them itself (`noble_neuron.training.data.fit_backbones`, on the training amplitudes only);
`add_backbones` does the same for a checkpoint trained before backbones existed, from the dataset it was
trained on, with the same validation split.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

__all__ = ["add_backbones"]

log = logging.getLogger(__name__)


def add_backbones(checkpoint: str | Path, data_path: str | Path, out_path: str | Path | None = None,
                  val_every_kth_amplitude: int | None = None) -> Path:
    """Fit the backbones of `checkpoint`'s training models on their training steps in `data_path` (validation
    amplitudes held out as in its training) and write the checkpoint with them to `out_path` (default: in place)."""
    from ..data.dataset import open_dataset
    from ..features.spikes import spike_times
    from ..surrogate.checkpoint import load_checkpoint, save_surrogate
    from ..surrogate.model import Surrogate
    from .data import fit_backbones, heldout_mask

    ckpt = load_checkpoint(checkpoint)
    meta = dict(ckpt["metadata"])
    meta.pop("backbones", None)  # refitted below (they may be of an older layout)
    s = Surrogate.from_metadata(meta, ckpt["state_dict"], device="cpu")
    if not s.config.is_event_model:
        raise ValueError(f"{checkpoint} is not a whole-trace event model; only those have a physics backbone")
    k = val_every_kth_amplitude
    if k is None:
        k = int(s.metrics.get("train_config", {}).get("val_every_kth_amplitude", 5))
    ds = open_dataset(data_path)
    ids = list(ds.model_ids)
    missing = [m for m in s.train_model_ids if m not in ids]
    if missing:
        raise ValueError(f"{data_path} lacks training models {missing[:5]} of {checkpoint}; pass its training dataset")
    if abs(ds.dt_ms - s.dt_ms) > 1e-9:
        raise ValueError(f"{data_path} is sampled at {ds.dt_ms} ms, the checkpoint at {s.dt_ms} ms")
    ls = ds.rows(kind="long_square")
    ls = ls[np.isin(ds.model_index[ls], [ids.index(m) for m in s.train_model_ids])]
    held = heldout_mask(ds.amp_nA[ls], ds.model_index[ls], np.ones(ls.size, bool), k)
    rows = ls[~held]
    stim, volt = ds.read(rows, "stimulus_nA"), ds.read(rows, "voltage_mV")
    spikes = [spike_times(v, ds.dt_ms) for v in volt]
    s.set_backbones(fit_backbones(stim, volt, ds.dt_ms, spikes, np.arange(rows.size), ds.model_index[rows], ids))
    log.info("fitted backbones of %d of %d training models", len(s.backbones), len(s.train_model_ids))
    return save_surrogate(s, out_path if out_path is not None else checkpoint)
