"""Training the FNO surrogate on a dataset: config, relative-Lp loss, resumable loop.

The data are the 'train' models' traces with held-out amplitudes for validation
(`noble_neuron.training.data`; the dataset needs its ``/features`` table, run
`noble_neuron.features.table.extract_features` first).

Loss: relative Lp of the voltage in mV, per trace, averaged over the batch
(``||v_pred - v||_p / ||v||_p``, p = 4 by default; the mV baseline keeps the denominator
far from zero, unlike the normalised voltage of a subthreshold trace). Optimiser AdamW,
``ReduceLROnPlateau`` on the validation loss (training loss if nothing is held out).

Whole-trace models train on full traces. Event models (``SurrogateConfig.event_output``,
`noble_neuron.surrogate.decoder`) train on their coarse grid: relative Lp of the interspike
voltage plus ``spike_loss_weight`` times the squared error of the spike phase (spikes²); each
training model's action potential is averaged from its training traces and stored in the
checkpoint. Streaming models train in `noble_neuron.training.streaming`.

Determinism and resume: weights are initialised from ``seed``; the shuffle of epoch e
comes from ``numpy.random.default_rng([seed, e])``, so it does not depend on history. Every
epoch writes ``<out>.resume`` (`noble_neuron.training.resume`); a run with the same settings
(``epochs`` may grow) continues from it, and reproduces an uninterrupted run. The resume file is kept after training so
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
from ..surrogate.encoding import build_input
from ..surrogate.event_model import event_channels
from ..surrogate.model import Surrogate, SurrogateConfig, build_fno, count_parameters, decode_voltage, default_device
from ..validation import is_int, is_real
from .data import TrainingData, heldout_mask, load_training_data
from .resume import resume_path, resume_training, settings_key

__all__ = ["TrainConfig", "heldout_mask", "relative_lp", "train", "resume_path"]  # heldout_mask: its 0.1 path

log = logging.getLogger(__name__)

_LOSSES = {"rel_l4": 4.0, "rel_l2": 2.0}


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters.

    ``val_every_kth_amplitude``: hold out every k-th Long Square amplitude of each
    training model for validation (0 = no validation). ``kinds``: protocol kinds to
    train on (None = all). ``probe_rows``: training traces evaluated before and after
    training (reported as ``probe_rel_l4_initial/final``). ``plateau_on``: the loss
    ReduceLROnPlateau watches, ``"val"`` (held-out amplitudes) or ``"train"``; while an FNO
    starts to place spikes, validation rel-L4 rises (a spike a little off in time costs
    twice) and "val" then decays the learning rate before spikes are learned.
    ``schedule``: "plateau" (ReduceLROnPlateau, NOBLE's) or "cosine" (lr annealed to ``min_lr``
    over ``epochs``: set epochs to what the time budget allows; noisy validation losses cannot
    decay it early).
    ``feature_noise``: standard deviation (scaled-feature units, the range is [0.5, 3.5]) of Gaussian noise
    added to each training item's features, so the network cannot key on a training model's exact
    feature point (whole-trace models; validation and runs see the exact features).
    ``init_from``: a checkpoint whose weights start the network (same architecture), to
    continue training with a fresh optimiser and schedule.
    ``spike_loss_weight``: event models add this weight times the squared error of the spike
    phase to the voltage loss; streaming models this weight times the binary cross-entropy of
    their spike logits, positives weighted ``spike_pos_weight`` (spikes are rare steps).
    ``closed_loop_from_epoch``, ``closed_loop_every``, ``crop_steps``, ``crop_warmup_steps``,
    ``sparse_oversample`` (traces whose detailed cell fires below ``SPARSE_RATE_HZ`` appear this many
    times per epoch): streaming models only (`noble_neuron.training.streaming`).
    """

    epochs: int = 50
    batch_size: int = 16
    lr: float = 0.004
    weight_decay: float = 1e-4
    plateau_factor: float = 0.4
    plateau_patience: int = 4
    min_lr: float = 1e-6
    seed: int = 0
    val_every_kth_amplitude: int = 5
    loss: str = "rel_l4"
    kinds: tuple[str, ...] | None = None
    probe_rows: int = 64
    plateau_on: str = "val"
    schedule: str = "plateau"
    feature_noise: float = 0.0
    init_from: str | None = None
    spike_loss_weight: float = 1.0
    spike_pos_weight: float = 10.0
    closed_loop_from_epoch: int | None = None
    closed_loop_every: int = 5
    crop_steps: int | None = None
    crop_warmup_steps: int = 1000
    sparse_oversample: int = 1

    def __post_init__(self) -> None:
        def _int(name: str, minimum: int) -> None:
            v = getattr(self, name)
            if not is_int(v) or v < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
            object.__setattr__(self, name, int(v))

        for name, minimum in (("epochs", 0), ("batch_size", 1), ("plateau_patience", 0), ("seed", 0),
                              ("val_every_kth_amplitude", 0), ("probe_rows", 0), ("closed_loop_every", 1),
                              ("crop_warmup_steps", 0), ("sparse_oversample", 1)):
            _int(name, minimum)
        if self.closed_loop_from_epoch is not None:
            _int("closed_loop_from_epoch", 1)
        if self.crop_steps is not None:
            _int("crop_steps", 2)
        for name in ("lr", "weight_decay", "plateau_factor", "min_lr", "spike_loss_weight", "spike_pos_weight",
                     "feature_noise"):
            v = getattr(self, name)
            if not is_real(v) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, name, float(v))
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if self.val_every_kth_amplitude == 1:
            raise ValueError("val_every_kth_amplitude=1 would hold out every amplitude; use 0 (none) or >= 2")
        if self.loss not in _LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; use one of {sorted(_LOSSES)}")
        if self.schedule not in ("plateau", "cosine"):
            raise ValueError(f"schedule must be 'plateau' or 'cosine', got {self.schedule!r}")
        if self.plateau_on not in ("val", "train"):
            raise ValueError(f"plateau_on must be 'val' or 'train', got {self.plateau_on!r}")
        if self.init_from is not None:
            object.__setattr__(self, "init_from", str(self.init_from))
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


# ---------------------------------------------------------------------------- loop
def _forward(model, sc: SurrogateConfig, data: TrainingData, idx: np.ndarray, n_ref: int, device,
             feature_noise: np.ndarray | None = None):
    """(prediction, target, spike phase prediction and target or None) for the full traces of rows `idx`
    (event models: the interspike voltage and the phase, on their coarse grid of `n_ref` samples).
    ``feature_noise`` (len(idx), F) is added to the scaled features (training only)."""
    feat = data.feat_scaled[idx] if feature_noise is None else data.feat_scaled[idx] + feature_noise.astype(np.float32)
    inp = build_input(torch.from_numpy(data.stim[idx]).to(device), torch.from_numpy(data.amp_scaled[idx]).to(device),
                      torch.from_numpy(feat).to(device), n_ref=n_ref, k_amp=sc.k_amp,
                      k_feat=sc.k_feat, current_scale_nA=sc.current_scale_nA)
    target = torch.from_numpy(data.volt[idx]).to(device)
    if sc.is_event_model:
        event, v_between = event_channels(model, inp, sc)
        return v_between, target, (event, torch.from_numpy(data.events[idx]).to(device))
    return decode_voltage(model, inp, sc), target, None


def _phase_loss(spikes) -> torch.Tensor:
    """Per-item mean squared error of the spike phase (spikes²)."""
    pred, target = spikes
    return ((pred - target) ** 2).mean(-1)


def _evaluate(model, sc, data, idx, n_ref: int, device, batch_size) -> dict[str, float]:
    if idx.size == 0:
        return {}
    model.eval()
    l4, l2, phase = [], [], []
    with torch.inference_mode():
        for i in range(0, idx.size, batch_size):
            pred, y, spikes = _forward(model, sc, data, idx[i:i + batch_size], n_ref, device)
            l4.append(relative_lp(pred, y, 4.0))
            l2.append(relative_lp(pred, y, 2.0))
            if spikes is not None:
                phase.append(_phase_loss(spikes))
    out = {"rel_l4": float(torch.cat(l4).mean()), "rel_l2": float(torch.cat(l2).mean())}
    if phase:
        out["event_loss"] = float(torch.cat(phase).mean())
    return out


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
    data, meta = load_training_data(Path(data_path), sc, tc.kinds, tc.val_every_kth_amplitude)
    n_ref = int(data.stim.shape[1])  # the model's grid: coarser than the data's for event models
    device = default_device() if device is None else torch.device(device)
    key = settings_key(sc, tc, meta["dataset"])
    rpath = resume_path(out_path)
    log.info("training on %d traces (%d validation) of %d models, L=%d",
             data.train_idx.size, data.val_idx.size, len(meta["train_model_ids"]), n_ref)

    with _deterministic():
        torch.manual_seed(tc.seed)
        model = build_fno(sc).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        if tc.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(tc.epochs, 1), eta_min=tc.min_lr)
        else:
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
                # the clip level is a training target of streaming models, not part of the network
                if dataclasses.replace(src, v_clip_mV=sc.v_clip_mV) != sc:
                    raise ValueError(f"init_from {tc.init_from} has another architecture/encoding than this config")
                model.load_state_dict(init["state_dict"])
                log.info("initialised weights from %s", tc.init_from)
            state = {"probe_initial": _evaluate(model, sc, data, probe, n_ref, device, tc.batch_size)}

        def surrogate(metrics: dict) -> Surrogate:
            return Surrogate(model, sc, dt_ms=meta["dt_ms"], n_samples=meta["n_samples"],
                             amp_range_nA=meta["amp_range_nA"],
                             ap_templates_mV=meta.get("ap_templates_mV"), ap_post_ms=meta.get("ap_post_ms"),
                             backbones=meta.get("backbones"), feature_scaler=meta["feature_scaler"], hull_points=meta["hull_points"],
                             train_model_ids=meta["train_model_ids"], model_features=meta["model_features"],
                             stimulus_kinds=meta["stimulus_kinds"], metrics=metrics, device=device)

        p = _LOSSES[tc.loss]
        stopped_early = False
        bar = tqdm(range(start_epoch, tc.epochs), disable=not progress, desc="training", unit="epoch",
                   initial=start_epoch, total=tc.epochs)
        for epoch in bar:
            rng = np.random.default_rng([tc.seed, epoch])
            order = rng.permutation(data.train_idx)
            model.train()
            sums, n = np.zeros(3), 0
            for i in range(0, order.size, tc.batch_size):
                idx = order[i:i + tc.batch_size]
                noise = (rng.normal(0.0, tc.feature_noise, (idx.size, data.feat_scaled.shape[1]))
                         if tc.feature_noise > 0 else None)
                pred, y, spikes = _forward(model, sc, data, idx, n_ref, device, noise)
                loss = relative_lp(pred, y, p).mean()
                if spikes is not None:
                    phase_loss = _phase_loss(spikes)
                    loss = loss + tc.spike_loss_weight * phase_loss.mean()
                    sums[2] += float(phase_loss.detach().sum())
                if not bool(torch.isfinite(loss)):
                    raise FloatingPointError(
                        f"training loss became {float(loss)} in epoch {epoch + 1}; the weights of the last finished "
                        f"epoch are kept in {rpath} (nothing of this epoch was saved). Lower train.lr and resume, "
                        "or start over with --restart")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    sums[:2] += [float(relative_lp(pred, y, 4.0).sum()), float(relative_lp(pred, y, 2.0).sum())]
                n += idx.size
            val = _evaluate(model, sc, data, data.val_idx, n_ref, device, tc.batch_size)
            rec = {"epoch": epoch + 1, "train_rel_l4": float(sums[0] / n), "train_rel_l2": float(sums[1] / n),
                   **({"train_event_loss": float(sums[2] / n)} if sc.is_event_model else {}),
                   "lr": opt.param_groups[0]["lr"], **{f"val_{k}": v for k, v in val.items()}}
            watched = rec[f"train_rel_l{int(p)}"] if tc.plateau_on == "train" else val.get(f"rel_l{int(p)}")
            if watched is not None and "event_loss" in val and tc.plateau_on == "val":
                watched += tc.spike_loss_weight * val["event_loss"]
            if tc.schedule == "cosine":
                sched.step()
            else:
                sched.step(rec[f"train_rel_l{int(p)}"] if watched is None else watched)
            history.append(rec)
            bar.set_postfix(loss=f"{rec['train_rel_l4']:.4f}", val=f"{val.get('rel_l4', float('nan')):.4f}")
            log.debug("epoch %d: %s", epoch + 1, rec)
            state.update(settings=key, history=history)
            snapshot = surrogate({})
            save_checkpoint(rpath, snapshot.metadata(), snapshot.state_dict(), optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(), epoch=epoch + 1, rng={"torch": torch.get_rng_state()},
                            train_json=json.dumps(state))
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
            "probe_rel_l4_final": _evaluate(model, sc, data, probe, n_ref, device, tc.batch_size).get("rel_l4"),
            "n_train_traces": int(data.train_idx.size),
            "n_val_traces": int(data.val_idx.size),
            "n_parameters": count_parameters(model),
            "train_config": tc.to_dict(),
            "dataset": meta["dataset"],
            "wall_s": time.perf_counter() - t0,
            "history": history,
        }
        save_surrogate(surrogate(metrics), out_path)
    log.info("wrote %s (train rel-L4 %.4f)", out_path, metrics.get("train_rel_l4", float("nan")))
    return metrics
