"""Training the FNO surrogate on a dataset: config, relative-Lp loss, resumable loop.

Only models with split ``'train'`` are used; their features come from the dataset's
``/features`` table (run `noble_neuron.features.table.extract_features` first) and the
`FeatureScaler`, amplitude range and feature hull are fit on them alone. Validation holds
out every k-th Long Square amplitude of each training model (interior amplitudes only,
so validation stays inside the trained amplitude range) and is evaluated on full traces.

Loss: relative Lp of the voltage in mV, per trace, averaged over the batch
(``||v_pred - v||_p / ||v||_p``, p = 4 by default; the mV baseline keeps the denominator
far from zero, unlike the normalised voltage of a subthreshold trace). Optimiser AdamW,
``ReduceLROnPlateau`` on the validation loss (training loss if nothing is held out).

Event models (``SurrogateConfig.event_output``, `noble_neuron.surrogate.decoder`) train on whole
traces on their coarse grid: relative Lp of the interspike voltage plus ``spike_loss_weight``
times the squared error of the spike phase (spikes²); each training model's action potential is averaged from its training traces
and stored in the checkpoint.

Random time windows (``window_samples``) use the full trace's embedding time values at
their position (`noble_neuron.surrogate.encoding.time_grid`). Caveat: the FNO's spectral weights
are indexed by wavenumber per window, so windows much shorter than the trace change the
physical frequency each weight sees; the default trains on full traces.

Determinism and resume: weights are initialised from ``seed``; the shuffle and window
offsets of epoch e come from ``numpy.random.default_rng([seed, e])``, so they do not
depend on history. Every epoch writes ``<out>.resume`` (weights, optimizer, scheduler,
epoch, RNG state, history); a run with the same settings (``epochs`` may grow) continues
from it, and reproduces an uninterrupted run. The resume file is kept after training so
that a later call with more epochs can extend it.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..surrogate.checkpoint import load_checkpoint, save_checkpoint, save_surrogate
from ..config_io import checked_mapping, yaml_section
from ..data.dataset import open_dataset
from ..surrogate.encoding import AMPLITUDE_THRESHOLD_NA, build_input, characteristic_amplitude, scale_amplitude
from ..features.ephys import FeatureScaler
from ..surrogate.spike_head import ap_template, refractory_samples, spike_labels
from ..surrogate.model import (Surrogate, SurrogateConfig, build_fno, count_parameters, decode_outputs, decode_voltage,
                              default_device, event_channels, history_channels)
from ..validation import is_int, is_real

__all__ = ["TrainConfig", "calibrate_spikes", "relative_lp", "train", "resume_path"]

log = logging.getLogger(__name__)

_LOSSES = {"rel_l4": 4.0, "rel_l2": 2.0}


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters.

    ``window_samples``: length of random training windows (None = full traces).
    ``val_every_kth_amplitude``: hold out every k-th Long Square amplitude of each
    training model for validation (0 = no validation). ``kinds``: protocol kinds to
    train on (None = all). ``probe_rows``: training traces evaluated before and after
    training (reported as ``probe_rel_l4_initial/final``). ``plateau_on``: the loss
    ReduceLROnPlateau watches, ``"val"`` (held-out amplitudes) or ``"train"``; while an FNO
    starts to place spikes, validation rel-L4 rises (a spike a little off in time costs
    twice) and "val" then decays the learning rate before spikes are learned.
    ``init_from``: a checkpoint whose weights start the network (same architecture), to
    continue training with a fresh optimiser and schedule.
    ``window_time``: ``"absolute"`` (a window sees the full trace's embedding time values)
    or ``"relative"``: a sliding-window, causal surrogate for network mode (needs a model
    with ``sliding_window``). Every window starts its own time axis at 0. An input-only
    model (no ``voltage_history``) sees the window's current and is scored on the voltage
    of its last ``history_horizon_samples`` samples (the earlier ones lack the history that
    set them). A model with ``voltage_history`` also sees the window's voltage except the
    last P samples, P drawn uniformly from 1 .. ``history_horizon_samples`` per window, and
    the loss is taken on those P samples; known voltages get Gaussian noise of
    ``history_noise_mV`` so it tolerates its own small errors when it runs closed-loop.
    Traces are padded in front with a window of rest (I = 0, v = first sample), as a
    simulation sees at t = 0.
    ``pushforward``: the voltage before the predicted part is the model's own output over
    this many earlier closed-loop steps (rolled out without gradient), not the truth, so
    training sees the errors the model makes closed-loop (Brandstetter et al. 2022).
    ``spike_loss_weight``, ``spike_pos_weight``: spike-head models add this weight times the
    binary cross-entropy of their spike logits (positives weighted ``spike_pos_weight``: spikes
    are rare samples) to the voltage loss on the same samples.
    """

    epochs: int = 50
    batch_size: int = 16
    lr: float = 0.004
    weight_decay: float = 1e-4
    plateau_factor: float = 0.4
    plateau_patience: int = 4
    min_lr: float = 1e-6
    window_samples: int | None = None
    seed: int = 0
    val_every_kth_amplitude: int = 5
    loss: str = "rel_l4"
    kinds: tuple[str, ...] | None = None
    probe_rows: int = 64
    plateau_on: str = "val"
    init_from: str | None = None
    window_time: str = "absolute"
    history_horizon_samples: int = 34
    history_noise_mV: float = 0.5
    pushforward: int = 0
    spike_loss_weight: float = 1.0
    spike_pos_weight: float = 10.0
    closed_loop_from_epoch: int | None = None
    closed_loop_every: int = 5
    crop_steps: int | None = None
    crop_warmup_steps: int = 1000

    def __post_init__(self) -> None:
        def _int(name: str, minimum: int) -> None:
            v = getattr(self, name)
            if not is_int(v) or v < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
            object.__setattr__(self, name, int(v))

        for name, minimum in (("epochs", 0), ("batch_size", 1), ("plateau_patience", 0), ("seed", 0),
                              ("val_every_kth_amplitude", 0), ("probe_rows", 0), ("history_horizon_samples", 1),
                              ("closed_loop_every", 1), ("crop_warmup_steps", 0)):
            _int(name, minimum)
        if self.closed_loop_from_epoch is not None:
            _int("closed_loop_from_epoch", 1)
        if self.crop_steps is not None:
            _int("crop_steps", 2)
        for name in ("lr", "weight_decay", "plateau_factor", "min_lr", "history_noise_mV", "spike_loss_weight",
                     "spike_pos_weight"):
            v = getattr(self, name)
            if not is_real(v) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, name, float(v))
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if self.window_samples is not None:
            _int("window_samples", 2)
        if self.val_every_kth_amplitude == 1:
            raise ValueError("val_every_kth_amplitude=1 would hold out every amplitude; use 0 (none) or >= 2")
        if self.loss not in _LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; use one of {sorted(_LOSSES)}")
        if self.plateau_on not in ("val", "train"):
            raise ValueError(f"plateau_on must be 'val' or 'train', got {self.plateau_on!r}")
        if self.init_from is not None:
            object.__setattr__(self, "init_from", str(self.init_from))
        if self.window_time not in ("absolute", "relative"):
            raise ValueError(f"window_time must be 'absolute' or 'relative', got {self.window_time!r}")
        if self.window_time == "relative" and self.window_samples is None:
            raise ValueError("window_time='relative' (sliding-window surrogate) needs window_samples")
        if not is_int(self.pushforward) or self.pushforward < 0:
            raise ValueError(f"pushforward (closed-loop steps before each training window) must be an integer "
                             f">= 0, got {self.pushforward!r}")
        if self.window_time == "relative" and 2 * self.history_horizon_samples >= self.window_samples:
            raise ValueError(f"history_horizon_samples={self.history_horizon_samples} leaves no history in a "
                             f"{self.window_samples}-sample window")
        if self.kinds is not None:
            if isinstance(self.kinds, str):
                raise TypeError(f"kinds must be a sequence of protocol kinds, e.g. ['long_square'], got {self.kinds!r}")
            object.__setattr__(self, "kinds", tuple(self.kinds))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["kinds"] = None if self.kinds is None else list(self.kinds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**checked_mapping(cls, d))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Load from a YAML mapping (the ``train:`` section of a training config file, if present)."""
        return cls.from_dict(yaml_section(path, "train"))


def relative_lp(pred: torch.Tensor, target: torch.Tensor, p: float = 4.0, eps: float = 1e-12) -> torch.Tensor:
    """Per-item relative Lp error over the last axis: ``||pred - target||_p / ||target||_p``."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    num = torch.linalg.vector_norm(pred - target, ord=p, dim=-1)
    den = torch.linalg.vector_norm(target, ord=p, dim=-1)
    return num / den.clamp(min=eps)


def resume_training(rpath: Path, key: dict, model, opt, sched) -> tuple[int, dict]:
    """Load a resume file into model, optimizer, scheduler and torch's RNG; (epochs done, its train state).
    Refuses a file written with other settings or data."""
    ck = load_checkpoint(rpath)
    state = json.loads(ck["train_json"])
    if state["settings"] != key:
        raise ValueError(f"resume checkpoint {rpath} was written with other settings or data; "
                         "delete it or pass resume=False to start over")
    model.load_state_dict(ck["state_dict"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    torch.set_rng_state(ck["rng"]["torch"])
    log.info("resuming from %s at epoch %d", rpath, int(ck["epoch"]))
    return int(ck["epoch"]), state


def resume_path(out_path: str | Path) -> Path:
    """Where `train` keeps its per-epoch resume checkpoint for `out_path`."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".resume")


@contextmanager
def _deterministic() -> Iterator[None]:
    was = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)


# ---------------------------------------------------------------------------- data
@dataclass
class _Data:
    stim: np.ndarray  # (N, L) float32 nA
    volt: np.ndarray  # (N, L) float32 mV
    amp_scaled: np.ndarray  # (N,) float32
    feat_scaled: np.ndarray  # (N, F) float32
    train_idx: np.ndarray
    val_idx: np.ndarray
    events: np.ndarray | None = None  # event models: (N, Lc) spike phase or spike labels on the coarse grid
    amp_range_nA: tuple[float, float] = (0.0, 1.0)
    scaled_range: tuple[float, float] = (0.5, 3.5)

    def window_amp_scaled(self, x: np.ndarray) -> np.ndarray:
        """Scaled characteristic amplitude of each window (B, W) of current (nA)."""
        amp = characteristic_amplitude(torch.from_numpy(np.ascontiguousarray(x))).numpy().astype(np.float64)
        return scale_amplitude(amp, self.amp_range_nA, self.scaled_range).astype(np.float32)


def _model_amp_range(model: int, rows_model: np.ndarray, train_idx: np.ndarray, amps: np.ndarray) -> dict:
    """{"amp_range_nA": (min, max)} of the characteristic amplitudes model `model` was trained on ({} if none):
    SurrogateCell(model_id) warns outside it, e.g. beyond a rheobase-relative plan's top amplitude."""
    mine = amps[train_idx][rows_model[train_idx] == model]
    return {"amp_range_nA": [float(mine.min()), float(mine.max())]} if mine.size else {}


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


def window_amplitudes(stim_nA: np.ndarray, window: int, stride: int = 32) -> np.ndarray:
    """Characteristic amplitudes (nA) of every `window`-sample window (offsets every `stride`) of each trace."""
    on = (np.abs(stim_nA) > AMPLITUDE_THRESHOLD_NA).astype(np.float64)
    cs_i = np.concatenate([np.zeros((len(stim_nA), 1)), np.cumsum(stim_nA * on, axis=1)], axis=1)
    cs_n = np.concatenate([np.zeros((len(stim_nA), 1)), np.cumsum(on, axis=1)], axis=1)
    starts = np.arange(0, stim_nA.shape[1] - window + 1, stride)
    total = cs_i[:, starts + window] - cs_i[:, starts]
    count = cs_n[:, starts + window] - cs_n[:, starts]
    return np.where(count > 0, total / np.maximum(count, 1), 0.0).ravel()


def _load_data(data_path: Path, sc: SurrogateConfig, tc: TrainConfig) -> tuple[_Data, dict]:
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
    kinds = ds.row_kinds()[rows]
    if tc.kinds is not None:
        keep = np.isin(kinds, tc.kinds)
        rows, kinds = rows[keep], kinds[keep]
    if rows.size == 0:
        raise ValueError(f"{data_path} has no finished rows of training models (kinds={tc.kinds})")
    rows_model = ds.model_index[rows]
    held = heldout_mask(ds.amp_nA[rows], rows_model, kinds == "long_square", tc.val_every_kth_amplitude)

    stim = ds.read(rows, "stimulus_nA")
    volt = ds.read(rows, "voltage_mV")
    if not (np.isfinite(stim).all() and np.isfinite(volt).all()):
        raise ValueError(f"{data_path} contains NaN/inf traces among the training rows; regenerate them")
    amps = characteristic_amplitude(torch.from_numpy(stim)).numpy().astype(np.float64)
    train_idx, val_idx = np.flatnonzero(~held), np.flatnonzero(held)
    ref = amps[train_idx]
    if tc.window_time == "relative":
        # a simulation starts at rest: windows reaching before t = 0 see I = 0 and v = v(0) there
        pad = tc.window_samples - 1
        stim = np.concatenate([np.zeros((len(stim), pad), np.float32), stim], axis=1)
        volt = np.concatenate([np.repeat(volt[:, :1], pad, axis=1), volt], axis=1)
        ref = window_amplitudes(stim[train_idx], tc.window_samples)
    lo, hi = float(ref.min()), float(ref.max())
    if not hi > lo:
        raise ValueError(f"training stimuli all have the same amplitude {lo} nA; need a range of amplitudes")
    scaler = FeatureScaler.fit(fvals[train_models], sc.feature_names, sc.scaled_low, sc.scaled_high)
    pts = scaler.transform(fvals[train_models])
    hull = np.unique(pts, axis=0)
    if hull.shape[0] > hull.shape[1]:
        from scipy.spatial import ConvexHull, QhullError

        try:
            hull = hull[ConvexHull(hull).vertices]
        except QhullError:
            pass  # degenerate: keep all points; Surrogate falls back to a bounding box
    amp_scaled = scale_amplitude(amps, (lo, hi), (sc.scaled_low, sc.scaled_high))
    n_fine = int(stim.shape[1])
    events, event_meta = None, {}
    if sc.is_event_model:
        stim, volt, events, event_meta = _event_targets(stim, volt, train_idx, rows_model, ds.dt_ms, sc,
                                                        list(ds.model_ids))
    data = _Data(stim, volt, amp_scaled.astype(np.float32),
                 scaler.transform(fvals[rows_model]).astype(np.float32), train_idx, val_idx, events,
                 (lo, hi), (sc.scaled_low, sc.scaled_high))
    meta = {
        "dt_ms": ds.dt_ms, "n_samples": n_fine, **event_meta, "amp_range_nA": (lo, hi), "feature_scaler": scaler,
        "hull_points": hull, "train_model_ids": [ds.model_ids[m] for m in train_models],
        "model_features": {ds.model_ids[m]: {"split": ds.model_splits[m],
                                             **{n: float(v) for n, v in zip(sc.feature_names, fvals[m])},
                                             **_model_amp_range(m, rows_model, train_idx, amps)}
                           for m in range(len(ds.model_ids)) if np.isfinite(fvals[m]).all()},
        "dataset": {"path": str(data_path), "signature": str(ds.attrs.get("signature", ""))},
        "stimulus_kinds": sorted(set(kinds.tolist())),
        "rows_model": rows_model,
    }
    if sc.spike_head:
        meta["spike_template_mV"] = ap_template(volt[train_idx], sc.v_clip_mV).tolist()
        meta["spike_refractory_samples"] = refractory_samples(volt[train_idx])
    return data, meta


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


def _event_targets(stim, volt, train_idx, rows_model, dt_ms, sc: SurrogateConfig, model_ids):
    """Coarse-grid inputs and targets of an event model (`noble_neuron.surrogate.decoder`): (current (N, Lc) nA,
    interspike voltage (N, Lc) mV, spike phase (N, Lc), metadata with each training model's
    action potential and the window's end ``ap_post_ms``)."""
    from ..features.ephys import spike_times
    from ..surrogate.decoder import bridged_voltage, coarse_times_ms, coarsen, phase_target

    f, pre = sc.time_coarsening, sc.ap_pre_ms
    spikes = [spike_times(v, dt_ms) for v in volt]
    templates, post = model_ap_templates(volt, spikes, train_idx, rows_model, dt_ms, pre, model_ids)
    stim_c = coarsen(stim, f).astype(np.float32)
    t_c = coarse_times_ms(stim_c.shape[1], dt_ms, f)
    on = np.abs(stim) > AMPLITUDE_THRESHOLD_NA
    onset = np.where(on.any(axis=1), on.argmax(axis=1) * dt_ms, np.inf)
    events = np.stack([phase_target(st, t_c, o) for st, o in zip(spikes, onset)]).astype(np.float32)
    between = np.stack([coarsen(bridged_voltage(v, st, dt_ms, pre, post), f) for v, st in zip(volt, spikes)])
    return stim_c, between.astype(np.float32), events, {"ap_templates_mV": templates, "ap_post_ms": post}


# ---------------------------------------------------------------------------- loop
def _forward(model, sc: SurrogateConfig, data: _Data, idx: np.ndarray, win: "_Windows", device,
             offsets: np.ndarray | None, rng: np.random.Generator | None = None):
    """(prediction, target, loss mask or None, spike logits and labels or None) for rows `idx`
    (windows at `offsets`, if given).

    Sliding-window models: the last P samples of each window are predicted from the rest,
    P ~ U{1..horizon} when `rng` is given (training, with noisy history), else P = horizon.
    Spike-head models predict the voltage clipped at ``sc.v_clip_mV`` and spike logits.
    """
    if sc.is_event_model:
        inp = build_input(torch.from_numpy(data.stim[idx]).to(device), torch.from_numpy(data.amp_scaled[idx]).to(device),
                          torch.from_numpy(data.feat_scaled[idx]).to(device), n_ref=win.n_ref, k_amp=sc.k_amp,
                          k_feat=sc.k_feat, current_scale_nA=sc.current_scale_nA)
        event, v_between = event_channels(model, inp, sc)
        target = torch.from_numpy(data.volt[idx]).to(device)
        return v_between, target, None, (event, torch.from_numpy(data.events[idx]).to(device), sc.event_output)
    if offsets is None:
        x, y = data.stim[idx], data.volt[idx]
    else:
        cols = offsets[:, None] + np.arange(win.window)[None, :]
        x, y = data.stim[idx[:, None], cols], data.volt[idx[:, None], cols]
    target = torch.from_numpy(y).to(device)
    if not win.relative:
        start = 0 if offsets is None else torch.from_numpy(offsets.astype(np.int64)).to(device)
        inp = build_input(torch.from_numpy(x).to(device), torch.from_numpy(data.amp_scaled[idx]).to(device),
                          torch.from_numpy(data.feat_scaled[idx]).to(device), n_ref=win.n_ref, k_amp=sc.k_amp,
                          k_feat=sc.k_feat, current_scale_nA=sc.current_scale_nA, start=start)
        return decode_voltage(model, inp, sc), target, None, None
    if not sc.voltage_history:  # input-only: scored on the last `horizon` samples
        n_future, v_known = np.full(idx.size, win.horizon), None
    elif rng is None:
        n_future, v_known = np.full(idx.size, win.horizon), y
    else:
        n_future = rng.integers(1, win.horizon + 1, size=idx.size)
        v_known = y + rng.normal(0.0, win.noise_mV, size=y.shape).astype(np.float32)
        if win.pushforward:
            v_known = _pushforward_history(model, sc, data, idx, win, device, offsets, n_future, v_known, rng)
    pred, logit = _sliding_prediction(model, sc, data, idx, win, device, x, v_known, n_future, with_logits=True)
    mask = torch.arange(win.window, device=device)[None, :] >= torch.from_numpy(win.window - n_future)[:, None].to(device)
    if logit is None:
        return pred, target, mask, None
    labels = spike_labels(y, sc.spike_label_half_width)
    return pred, target.clamp(max=sc.v_clip_mV), mask, (logit, torch.from_numpy(labels).to(device),
                                                        "spike_probability")


def _sliding_prediction(model, sc, data, idx, win, device, x, v_known, n_future, with_logits=False):
    """A sliding-window model's voltage (B, W) for windows of current `x` and voltage `v_known`
    whose last `n_future` samples are to be predicted; each window is a trace of its own
    (time axis from 0, amplitude of the window). ``with_logits``: (voltage, spike logits or None)."""
    inp = build_input(torch.from_numpy(x).to(device), torch.from_numpy(data.window_amp_scaled(x)).to(device),
                      torch.from_numpy(data.feat_scaled[idx]).to(device), n_ref=win.n_ref, k_amp=sc.k_amp,
                      k_feat=sc.k_feat, current_scale_nA=sc.current_scale_nA)
    if sc.voltage_history:
        v = torch.from_numpy(np.ascontiguousarray(v_known)).to(device)
        inp = torch.cat([inp, history_channels(v, torch.from_numpy(n_future).to(device), sc)], dim=1)
    v_out, logit = decode_outputs(model, inp, sc)
    return (v_out, logit) if with_logits else v_out


def _pushforward_history(model, sc, data, idx, win, device, offsets, n_future, v_known, rng):
    """Replace the voltage before each window's predicted tail by the model's own closed-loop output.

    ``win.pushforward`` earlier windows are rolled out without gradient, oldest first: window
    j ends where window j-1's predicted part begins and predicts its last P_j ~ U{1..horizon}
    samples from history that already holds window j+1's predictions, as the engine does
    epoch after epoch. Training offsets leave room for them (>= steps · horizon).
    """
    steps, w, b = int(win.pushforward), win.window, idx.size
    p = np.concatenate([n_future[:, None], rng.integers(1, win.horizon + 1, size=(b, steps))], axis=1)
    starts = offsets[:, None] - np.cumsum(p[:, :-1], axis=1)  # window j >= 1 offsets (j-1 column)
    base = starts[:, -1]  # oldest window
    span = w + int((offsets - base).max())
    cols = base[:, None] + np.arange(span)[None, :]
    cols = np.minimum(cols, data.stim.shape[1] - 1)
    vbuf = data.volt[idx[:, None], cols] + rng.normal(0.0, win.noise_mV, size=(b, span)).astype(np.float32)
    with torch.no_grad():
        for j in range(steps, 0, -1):
            rel = starts[:, j - 1] - base
            wcols = rel[:, None] + np.arange(w)[None, :]
            x = data.stim[idx[:, None], starts[:, j - 1][:, None] + np.arange(w)[None, :]]
            pred = _sliding_prediction(model, sc, data, idx, win, device, x,
                                       np.take_along_axis(vbuf, wcols, axis=1), p[:, j]).cpu().numpy()
            tail = np.arange(w)[None, :] >= (w - p[:, j])[:, None]
            rows, cc = np.nonzero(tail)
            vbuf[rows, wcols[rows, cc]] = pred[rows, cc]
    rel = offsets - base
    out = np.take_along_axis(vbuf, rel[:, None] + np.arange(w)[None, :], axis=1)
    out[:, w - n_future.min():] = v_known[:, w - n_future.min():]  # the predicted part is ignored anyway
    return out


def _event_loss(spikes, mask: torch.Tensor | None, pos_weight: float) -> torch.Tensor:
    """Per-item loss of the event channel over the masked samples (all without a mask): binary
    cross-entropy of spike logits against labels (positives weighted), or the mean squared error of
    the spike phase (spikes²)."""
    pred, target, kind = spikes
    if kind == "phase":
        per_sample = (pred - target) ** 2
    else:
        per_sample = torch.nn.functional.binary_cross_entropy_with_logits(
            pred, target, reduction="none", pos_weight=torch.tensor(pos_weight, device=pred.device))
    if mask is None:
        return per_sample.mean(-1)
    m = mask.to(per_sample.dtype)
    return (per_sample * m).sum(-1) / m.sum(-1).clamp(min=1.0)


def _errors(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, p: float) -> torch.Tensor:
    """Per-item relative Lp error, over the masked samples only when a mask is given."""
    if mask is None:
        return relative_lp(pred, y, p)
    m = mask.to(pred.dtype)
    num = ((pred - y).abs() ** p * m).sum(-1) ** (1 / p)
    den = (y.abs() ** p * m).sum(-1) ** (1 / p)
    return num / den.clamp(min=1e-12)


@dataclass(frozen=True)
class _Windows:
    """How a loop sees traces: full traces (window None), windows, or sliding-model windows."""

    n_ref: int  # embedding reference length (trace length, or the window for a sliding model)
    window: int | None = None
    relative: bool = False
    horizon: int = 0  # sliding models: most samples predicted at the end of a window
    noise_mV: float = 0.0
    pushforward: int = 0

    def eval_offsets(self, n_trace: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(rows, offsets) for evaluation: full traces, or 6 evenly spread windows per sliding-model row."""
        if not self.relative:
            return idx, None
        offs = np.linspace(0, n_trace - self.window, 6).round().astype(np.int64)
        return np.repeat(idx, offs.size), np.tile(offs, idx.size)


def _evaluate(model, sc, data, idx, win: "_Windows", device, batch_size, pos_weight: float = 1.0) -> dict[str, float]:
    if idx.size == 0:
        return {}
    model.eval()
    l4, l2, bce = [], [], []
    idx, offsets = win.eval_offsets(data.stim.shape[1], idx)
    with torch.inference_mode():
        for i in range(0, idx.size, batch_size):
            off = None if offsets is None else offsets[i:i + batch_size]
            pred, y, mask, spikes = _forward(model, sc, data, idx[i:i + batch_size], win, device, off)
            l4.append(_errors(pred, y, mask, 4.0))
            l2.append(_errors(pred, y, mask, 2.0))
            if spikes is not None:
                bce.append(_event_loss(spikes, mask, pos_weight))
    out = {"rel_l4": float(torch.cat(l4).mean()), "rel_l2": float(torch.cat(l2).mean())}
    if bce:
        out["event_loss"] = float(torch.cat(bce).mean())
    return out


def _calibrate_spikes(sur: Surrogate, data: _Data, tc: TrainConfig, max_traces: int = 32) -> None:
    """Set a spike-head surrogate's probability threshold to reproduce the spike counts of (up to
    `max_traces` of) the validation traces, rolled out as the network engine runs it
    (`noble_neuron.training.rollout.calibrate_spike_threshold`); without validation traces keep 0.5."""
    from .rollout import calibrate_spike_threshold

    if data.val_idx.size == 0:
        log.warning("no validation traces: spike threshold left at %.2f (uncalibrated)", sur.spike_threshold)
        return
    rows = data.val_idx[np.linspace(0, data.val_idx.size - 1, min(max_traces, data.val_idx.size)).astype(int)]
    pad = tc.window_samples - 1  # relative windows: traces were padded in front with rest
    feats = sur.feature_scaler.inverse_transform(data.feat_scaled[rows].astype(np.float64))
    cal = calibrate_spike_threshold(sur, data.stim[rows, pad:], data.volt[rows, pad:], feats,
                                    epoch_samples=min(10, sur.sliding_horizon_samples))
    sur.spike_threshold, sur.spike_delay_samples = cal["threshold"], cal["delay_samples"]
    sur.metrics["spike_calibration"] = {k: v for k, v in cal.items() if k != "table"} | {"n_traces": int(rows.size)}
    log.info("spike threshold %.2f, delay %d samples: %d spikes vs %d in %d validation traces", cal["threshold"],
             cal["delay_samples"], cal["spikes_surrogate"], cal["spikes_reference"], rows.size)


def calibrate_spikes(checkpoint: str | Path, data_path: str | Path, out_path: str | Path | None = None) -> dict:
    """Re-derive a spike-head checkpoint's refractory period and re-calibrate its threshold and delay.

    Uses the checkpoint's own training config to select the same training and validation
    traces of `data_path` as training does, exactly as `train` does at its end (for checkpoints
    trained before a calibration step existed, or on other data). Writes `out_path` (default:
    in place); returns the calibration record (also in ``metrics["spike_calibration"]``).
    """
    from ..surrogate.checkpoint import load_surrogate

    sur = load_surrogate(checkpoint, device="cpu")
    if not sur.config.spike_head:
        raise ValueError(f"{checkpoint} is not a spike-head checkpoint (config.spike_head is false)")
    tc = TrainConfig.from_dict(sur.metrics.get("train_config") or {})
    data, meta = _load_data(Path(data_path), sur.config, tc)
    sur.spike_refractory_samples = meta["spike_refractory_samples"]
    _calibrate_spikes(sur, data, tc)
    save_surrogate(sur, out_path or checkpoint)
    return sur.metrics["spike_calibration"]


def _settings_key(sc: SurrogateConfig, tc: TrainConfig, dataset: dict) -> dict:
    d = tc.to_dict()
    d.pop("epochs")  # a resumed run may train for longer
    return {"surrogate": sc.to_dict(), "train": d, "dataset_signature": dataset["signature"]}


def train(
    data_path: str | Path,
    surrogate_config: SurrogateConfig,
    train_config: TrainConfig,
    out_path: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    max_minutes: float | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Train a surrogate on the 'train' models of `data_path`; write the checkpoint `out_path`.

    Returns the metrics dict (also stored in the checkpoint): final train/val relative L4
    and L2, probe errors before/after, per-epoch history, epochs done, wall time.
    ``max_minutes`` stops after the epoch that crosses it (the checkpoint is still written;
    run again to continue).
    """
    from tqdm import tqdm

    if not isinstance(surrogate_config, SurrogateConfig):
        raise TypeError(f"surrogate_config must be a SurrogateConfig, got {type(surrogate_config).__name__}")
    if not isinstance(train_config, TrainConfig):
        raise TypeError(f"train_config must be a TrainConfig, got {type(train_config).__name__}")
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"max_minutes must be > 0 or None, got {max_minutes!r}")
    sc, tc, out_path = surrogate_config, train_config, Path(out_path)
    if tc.epochs < 1:
        raise ValueError("train.epochs must be >= 1: 0 epochs would write an untrained checkpoint")
    if out_path.is_dir():
        raise ValueError(f"--out {out_path} is a folder: it must be a checkpoint file (e.g. {out_path / 'model.pt'})")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if device is not None and torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but this torch build sees no CUDA GPU; use --device cpu")
    if sc.streaming:
        from .streaming import train_streaming

        return train_streaming(Path(data_path), sc, tc, out_path, resume=resume, progress=progress,
                               max_minutes=max_minutes, device=default_device() if device is None else torch.device(device))
    t0 = time.perf_counter()
    data, meta = _load_data(Path(data_path), sc, tc)
    n_ref = int(data.stim.shape[1])  # the model's grid: coarser than the data's for event models
    window = tc.window_samples
    if sc.is_event_model and (window is not None or tc.window_time != "absolute"):
        raise ValueError("event models train on whole traces: remove train.window_samples / window_time")
    relative = tc.window_time == "relative"
    if relative and window > n_ref:
        raise ValueError(f"window_samples={window} is longer than the traces ({n_ref} samples)")
    if window is not None and window >= n_ref and not relative:
        window = None
    if relative and not sc.sliding_window:
        raise ValueError("window_time='relative' trains a sliding-window surrogate: set model.sliding_window: true "
                         "(input only) or model.voltage_history: true (closed loop on its own voltage)")
    if sc.sliding_window and not relative:
        raise ValueError("model.sliding_window/voltage_history are for sliding-window surrogates: set "
                         "train.window_time: relative")
    if relative and not sc.voltage_history and tc.pushforward:
        raise ValueError("pushforward rolls out a model's own voltage history; an input-only sliding-window model "
                         "(no model.voltage_history) has none: set train.pushforward: 0")
    win = _Windows(n_ref=window if relative else n_ref, window=window, relative=relative,
                   horizon=tc.history_horizon_samples if relative else 0, noise_mV=tc.history_noise_mV,
                   pushforward=tc.pushforward)
    full = _Windows(n_ref=n_ref) if not relative else win  # what validation/probes look at
    device = default_device() if device is None else torch.device(device)
    key = _settings_key(sc, tc, meta["dataset"])
    rpath = resume_path(out_path)
    log.info("training on %d traces (%d validation) of %d models, L=%d, window=%s",
             data.train_idx.size, data.val_idx.size, len(meta["train_model_ids"]), n_ref, window)

    with _deterministic():
        torch.manual_seed(tc.seed)
        model = build_fno(sc).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=tc.plateau_factor,
                                                           patience=tc.plateau_patience, min_lr=tc.min_lr)
        probe = np.random.default_rng([tc.seed, 2**31]).permutation(data.train_idx)[:tc.probe_rows]
        start_epoch, history, state = 0, [], {}
        if resume and rpath.is_file():
            start_epoch, state = resume_training(rpath, key, model, opt, sched)
            history = state["history"]
        else:
            if tc.init_from is not None:
                init = load_checkpoint(tc.init_from)
                src = SurrogateConfig.from_dict(init["metadata"]["config"])
                # the spike-label width and the clip level are training targets, not part of the network
                if dataclasses.replace(src, spike_label_half_width=sc.spike_label_half_width,
                                       v_clip_mV=sc.v_clip_mV) != sc:
                    raise ValueError(f"init_from {tc.init_from} has another architecture/encoding than this config")
                model.load_state_dict(init["state_dict"])
                log.info("initialised weights from %s", tc.init_from)
            state = {"probe_initial": _evaluate(model, sc, data, probe, full, device, tc.batch_size)}

        def surrogate(metrics: dict) -> Surrogate:
            return Surrogate(model, sc, dt_ms=meta["dt_ms"], n_samples=meta["n_samples"] if sc.is_event_model else win.n_ref,
                             amp_range_nA=meta["amp_range_nA"],
                             ap_templates_mV=meta.get("ap_templates_mV"), ap_post_ms=meta.get("ap_post_ms"),
                             sliding_horizon_samples=win.horizon if relative else None,
                             spike_template_mV=meta.get("spike_template_mV"),
                             spike_refractory_samples=meta.get("spike_refractory_samples"),
                             feature_scaler=meta["feature_scaler"], hull_points=meta["hull_points"],
                             train_model_ids=meta["train_model_ids"], model_features=meta["model_features"],
                             stimulus_kinds=meta["stimulus_kinds"],
                             metrics=metrics, device=device)

        p = _LOSSES[tc.loss]
        stopped_early = False
        bar = tqdm(range(start_epoch, tc.epochs), disable=not progress, desc="training", unit="epoch",
                   initial=start_epoch, total=tc.epochs)
        for epoch in bar:
            rng = np.random.default_rng([tc.seed, epoch])
            order = rng.permutation(data.train_idx)
            n_trace = data.stim.shape[1]
            lo = win.pushforward * win.horizon if relative else 0  # room for the pushforward windows
            offsets = None if window is None else rng.integers(lo, n_trace - window + 1, size=order.size)
            model.train()
            sums, n = np.zeros(2), 0
            for i in range(0, order.size, tc.batch_size):
                idx = order[i:i + tc.batch_size]
                off = None if offsets is None else offsets[i:i + tc.batch_size]
                pred, y, mask, spikes = _forward(model, sc, data, idx, win, device, off, rng if relative else None)
                err = _errors(pred, y, mask, p)
                loss = err.mean()
                if spikes is not None:
                    loss = loss + tc.spike_loss_weight * _event_loss(spikes, mask, tc.spike_pos_weight).mean()
                if not bool(torch.isfinite(loss)):
                    raise FloatingPointError(
                        f"training loss became {float(loss)} in epoch {epoch + 1}; the weights of the last finished "
                        f"epoch are kept in {rpath} (nothing of this epoch was saved). Lower train.lr or "
                        "train.history_noise_mV and resume, or start over with --restart")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    sums += [float(_errors(pred, y, mask, 4.0).sum()), float(_errors(pred, y, mask, 2.0).sum())]
                n += idx.size
            val = _evaluate(model, sc, data, data.val_idx, full, device, tc.batch_size, tc.spike_pos_weight)
            rec = {"epoch": epoch + 1, "train_rel_l4": float(sums[0] / n), "train_rel_l2": float(sums[1] / n),
                   "lr": opt.param_groups[0]["lr"], **{f"val_{k}": v for k, v in val.items()}}
            watched = rec[f"train_rel_l{int(p)}"] if tc.plateau_on == "train" else val.get(f"rel_l{int(p)}")
            if watched is not None and "event_loss" in val and tc.plateau_on == "val":
                watched += tc.spike_loss_weight * val["event_loss"]
            sched.step(rec[f"train_rel_l{int(p)}"] if watched is None else watched)
            history.append(rec)
            bar.set_postfix(loss=f"{rec['train_rel_l4']:.4f}", val=f"{val.get('rel_l4', float('nan')):.4f}")
            log.debug("epoch %d: %s", epoch + 1, rec)
            state.update(settings=key, history=history)
            snapshot = surrogate({})
            save_checkpoint(rpath, snapshot.metadata(), snapshot.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(), epoch=epoch + 1,
                            rng={"torch": torch.get_rng_state()}, train_json=json.dumps(state))
            if max_minutes is not None and time.perf_counter() - t0 > 60.0 * max_minutes and epoch + 1 < tc.epochs:
                log.warning("stopping after epoch %d: max_minutes=%g reached; run again to continue",
                            epoch + 1, max_minutes)
                stopped_early = True
                break
        bar.close()

        last = history[-1] if history else {}
        metrics = {
            "epochs_done": len(history),
            "epochs_requested": tc.epochs,
            "stopped_early": stopped_early,
            "loss": tc.loss,
            **{k: v for k, v in last.items() if k not in ("epoch",)},
            "probe_rel_l4_initial": state["probe_initial"].get("rel_l4"),
            "probe_rel_l4_final": _evaluate(model, sc, data, probe, full, device, tc.batch_size).get("rel_l4"),
            "n_train_traces": int(data.train_idx.size),
            "n_val_traces": int(data.val_idx.size),
            "n_parameters": count_parameters(model),
            "window_samples": window,
            "train_config": tc.to_dict(),
            "dataset": meta["dataset"],
            "wall_s": time.perf_counter() - t0,
            "history": history,
        }
        final = surrogate(metrics)
        if sc.spike_head:
            _calibrate_spikes(final, data, tc)
        save_surrogate(final, out_path)
    log.info("wrote %s (train rel-L4 %.4f)", out_path, metrics.get("train_rel_l4", float("nan")))
    return metrics
