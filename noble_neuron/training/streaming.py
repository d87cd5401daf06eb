"""Training of streaming (network-mode) surrogates (`noble_neuron.surrogate.streaming`), called by `train.train`.

Whole 2 s traces on the model grid (``time_coarsening`` data samples per step), all steps at
once as FFT convolutions. Loss per trace: mean squared error of the clipped voltage (in units
of ``v_scale_mV``) + ``spike_loss_weight`` × binary cross-entropy of the spike logit
(positives weighted ``spike_pos_weight``). The spike fed back at step k is the detailed
cell's spike at step k − 1 (teacher forcing); from epoch ``closed_loop_from_epoch`` on, half
of each batch gets instead the spikes the model itself fires when run closed loop on that
trace (no gradient through the rollout), with the detailed cell's voltage and spikes still as
targets, so it learns to continue correctly from its own, slightly different, spike history
(exposure bias). Those rollouts fire where the spike probability reaches 0.5; drawing them from
the hazard as the engine does was measured worse (docs/network_mode.md: rates 15–35 % low on
unseen models vs 3–10 %). The checkpoint stores ``spike_logit_shift`` = log
``spike_pos_weight``, which turns its weighted logits back into a hazard for the engine's
draws. Validation: teacher-forced losses on held-out traces, and every ``closed_loop_every``
epochs a closed-loop rollout of up to 32 of them exactly as the engine runs (spike-count
error, Γ ±2 ms).
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..surrogate.checkpoint import load_checkpoint, save_checkpoint, save_surrogate
from ..features.ephys import spike_times
from ..features.spike_metrics import coincidence_gamma
from ..surrogate.streaming import coarse_inputs, coarse_targets
from ..surrogate.model import Surrogate, SurrogateConfig, count_parameters
from .data import load_training_data, model_ap_templates
from .resume import resume_path, resume_training, settings_key

__all__ = ["train_streaming"]

log = logging.getLogger(__name__)

VAL_ROLLOUT_TRACES = 32
#: the spike probability at which the model fires in training's own-spike rollouts
OWN_SPIKE_PROBABILITY = 0.5
#: with train.crop_steps, the share of batches cropped from t = 0 (the others start anywhere)
CROPS_FROM_START = 0.3


#: traces firing below this rate (Hz) are the sparse, fluctuation-driven regime ``sparse_oversample`` repeats
SPARSE_RATE_HZ = 20.0


def _model_inputs(stim_c: np.ndarray, fb: np.ndarray, feat_scaled: np.ndarray, current_scale: float) -> np.ndarray:
    """(N, n, 2 + F) float32: current / scale, previous step's spike, features."""
    n, steps = stim_c.shape
    f = np.repeat(feat_scaled[:, None, :], steps, axis=1)
    return np.concatenate([(stim_c / current_scale)[..., None], fb[..., None], f], axis=2).astype(np.float32)


def _shift(spk: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((len(spk), 1), spk.dtype), spk[:, :-1]], axis=1)


@torch.no_grad()
def _own_spikes(model, x: torch.Tensor, refractory_steps: int) -> torch.Tensor:
    """(B, n) the spikes the model fires run closed loop on inputs x (B, n, C) (its own feedback), where
    its spike probability reaches `OWN_SPIKE_PROBABILITY`."""
    b, n, _ = x.shape
    state = model.initial_state(b)
    fired = torch.zeros(b, device=x.device)
    since = torch.full((b,), 10**9, device=x.device)
    out = torch.zeros(b, n, device=x.device)
    poles = model.step_poles()
    for k in range(n):
        xk = x[:, k].clone()
        xk[:, 1] = fired
        y, state = model.step(xk, state, poles)
        since += 1
        fire = (torch.sigmoid(y[:, 1]) >= OWN_SPIKE_PROBABILITY) & (since >= refractory_steps)
        since = torch.where(fire, torch.zeros_like(since), since)
        fired = fire.float()
        out[:, k] = fired
    return out


def _losses(model, x, v_t, s_t, sc: SurrogateConfig, pos_weight: float,
            skip: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-trace (voltage MSE in v_scale units, spike BCE), over the steps after the first `skip`."""
    out = model(x)[:, skip:]
    v_err = ((out[..., 0] - (v_t[:, skip:] - sc.v_offset_mV) / sc.v_scale_mV) ** 2).mean(dim=1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        out[..., 1], s_t[:, skip:], pos_weight=torch.tensor(pos_weight, device=x.device), reduction="none").mean(dim=1)
    return v_err, bce


def _closed_loop_scores(sur: Surrogate, stim: np.ndarray, volt: np.ndarray, feats_raw: np.ndarray,
                        dt_ms: float) -> dict[str, float]:
    """Engine-exact rollout of held-out traces: spike-count error and Γ (±2 ms) against the detailed ones."""
    from .rollout import streaming_rollout

    _, st = streaming_rollout(sur, stim, feats_raw, v_rest_mV=volt[:, 0])
    duration = (stim.shape[1] - 1) * dt_ms
    ref = [spike_times(v, dt_ms) for v in volt]
    n_ref = np.array([r.size for r in ref])
    n_sur = np.array([s.size for s in st])
    firing = n_ref > 0
    gam = [coincidence_gamma(r, s, 2.0, duration) for r, s in zip(ref, st) if r.size]
    return {"closed_loop_count_rel_error": float(np.abs(n_sur - n_ref)[firing].sum() / max(n_ref[firing].sum(), 1)),
            "closed_loop_rate_ratio": float(n_sur.sum() / max(n_ref.sum(), 1)),
            "closed_loop_gamma_2ms_median": float(np.median(gam)) if gam else float("nan")}


def train_streaming(data_path: Path, sc: SurrogateConfig, tc, out_path: Path, *, resume: bool, progress: bool,
                    max_minutes: float | None, device: torch.device) -> dict[str, Any]:
    """Train a streaming surrogate on whole traces (see module docstring); write `out_path`; return metrics."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    data, meta = load_training_data(data_path, sc, tc.kinds, tc.val_every_kth_amplitude)
    dt, f = meta["dt_ms"], sc.time_coarsening
    from ..data.dataset import open_dataset

    model_ids = list(open_dataset(data_path).model_ids)
    rows_model = meta["rows_model"]
    spikes = [spike_times(v, dt) for v in data.volt]
    templates, post = model_ap_templates(data.volt, spikes, data.train_idx, rows_model, dt, sc.ap_pre_ms, model_ids)
    refractory_steps = max(1, int((meta.get("spike_refractory_samples") or 1) // f))
    stim_c = coarse_inputs(data.stim, f)
    v_c, spk = coarse_targets(data.volt, f, sc.v_clip_mV)
    x_all = _model_inputs(stim_c, _shift(spk), data.feat_scaled, sc.current_scale_nA)
    v_all, s_all = v_c.astype(np.float32), spk
    feats_raw = meta["feature_scaler"].inverse_transform(data.feat_scaled.astype(np.float64))
    key = settings_key(sc, tc, meta["dataset"])
    rpath = resume_path(out_path)
    closed_from = tc.closed_loop_from_epoch

    torch.manual_seed(tc.seed)
    model = _build(sc, device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=tc.plateau_factor,
                                                       patience=tc.plateau_patience, min_lr=tc.min_lr)
    start_epoch, history = 0, []
    if resume and rpath.is_file():
        start_epoch, state = resume_training(rpath, key, model, opt, sched)
        history = state["history"]
    elif tc.init_from is not None:
        init = load_checkpoint(tc.init_from)
        if SurrogateConfig.from_dict(init["metadata"]["config"]) != sc:
            raise ValueError(f"init_from {tc.init_from} has another architecture/encoding than this config")
        model.load_state_dict(init["state_dict"])

    def surrogate(metrics: dict) -> Surrogate:
        return Surrogate(model, sc, dt_ms=dt, n_samples=meta["n_samples"], amp_range_nA=meta["amp_range_nA"],
                         spike_refractory_samples=meta.get("spike_refractory_samples"),
                         spike_logit_shift=logit_shift,
                         ap_templates_mV=templates, ap_post_ms=post, feature_scaler=meta["feature_scaler"],
                         hull_points=meta["hull_points"], train_model_ids=meta["train_model_ids"],
                         model_features=meta["model_features"], stimulus_kinds=meta["stimulus_kinds"],
                         metrics=metrics, device=device)

    val_roll = np.random.default_rng([tc.seed, 7]).permutation(data.val_idx)[:VAL_ROLLOUT_TRACES]
    logit_shift = math.log(tc.spike_pos_weight) if tc.spike_pos_weight > 0 else 0.0

    def to_t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=device)

    stopped_early = False
    bar = tqdm(range(start_epoch, tc.epochs), disable=not progress, desc="training (streaming)", unit="epoch",
               initial=start_epoch, total=tc.epochs)
    rates = np.array([sp.size for sp in spikes]) / (data.volt.shape[1] * dt / 1000.0)
    sparse = data.train_idx[(rates[data.train_idx] > 0) & (rates[data.train_idx] < SPARSE_RATE_HZ)]
    pool = np.concatenate([data.train_idx] + [sparse] * (tc.sparse_oversample - 1))
    for epoch in bar:
        rng = np.random.default_rng([tc.seed, epoch])
        order = rng.permutation(pool)
        model.train()
        sums, n = np.zeros(2), 0
        n_steps = x_all.shape[1]
        crop = n_steps if tc.crop_steps is None else min(tc.crop_steps, n_steps)
        for i in range(0, order.size, tc.batch_size):
            idx = np.sort(order[i:i + tc.batch_size])  # (a repeated trace may appear twice in a batch)
            # a crop from t = 0 (the state a run starts in), or from later with its first steps unscored
            # while the zero state forgets that it missed the history before the crop
            later = crop < n_steps and crop > tc.crop_warmup_steps and rng.random() >= CROPS_FROM_START
            a = int(rng.integers(0, n_steps - crop + 1)) if later else 0
            skip = tc.crop_warmup_steps if a > 0 else 0
            x = to_t(x_all[idx, a:a + crop])
            if closed_from is not None and epoch + 1 >= closed_from:
                half = rng.random(idx.size) < 0.5
                if half.any():
                    model.eval()
                    x[half, :, 1] = _shift_t(_own_spikes(model, x[half], refractory_steps))
                    model.train()
            v_err, bce = _losses(model, x, to_t(v_all[idx, a:a + crop]), to_t(s_all[idx, a:a + crop]), sc,
                                 tc.spike_pos_weight, skip)
            loss = (v_err + tc.spike_loss_weight * bce).mean()
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(f"training loss became {float(loss)} in epoch {epoch + 1}; lower train.lr "
                                         f"and resume from {rpath}, or start over with --restart")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sums += [float(v_err.detach().sum()), float(bce.detach().sum())]
            n += idx.size
        model.eval()
        with torch.no_grad():
            vs = [_losses(model, to_t(x_all[j]), to_t(v_all[j]), to_t(s_all[j]), sc, tc.spike_pos_weight)
                  for j in np.array_split(data.val_idx, max(1, data.val_idx.size // tc.batch_size))]
        val_v = float(torch.cat([a for a, _ in vs]).mean())
        val_s = float(torch.cat([b for _, b in vs]).mean())
        rec = {"epoch": epoch + 1, "train_v_mse": float(sums[0] / n), "train_spike_bce": float(sums[1] / n),
               "val_v_mse": val_v, "val_spike_bce": val_s, "lr": opt.param_groups[0]["lr"]}
        last = epoch + 1 == tc.epochs or (max_minutes is not None and time.perf_counter() - t0 > 60.0 * max_minutes)
        if val_roll.size and ((epoch + 1) % tc.closed_loop_every == 0 or last):
            rec.update(_closed_loop_scores(surrogate({}), data.stim[val_roll], data.volt[val_roll],
                                           feats_raw[val_roll], dt))
        sched.step(val_v + tc.spike_loss_weight * val_s)
        history.append(rec)
        bar.set_postfix(v=f"{val_v:.4f}", bce=f"{val_s:.4f}", cl=f"{rec.get('closed_loop_count_rel_error', -1):.2f}")
        log.info("epoch %d: %s", epoch + 1, rec)
        snap = surrogate({})
        save_checkpoint(rpath, snap.metadata(), snap.state_dict(), optimizer=opt.state_dict(),
                        scheduler=sched.state_dict(), epoch=epoch + 1, rng={"torch": torch.get_rng_state()},
                        train_json=json.dumps({"settings": key, "history": history}))
        if last and epoch + 1 < tc.epochs:
            log.warning("stopping after epoch %d: max_minutes=%g reached; run again to continue", epoch + 1,
                        max_minutes)
            stopped_early = True
            break
    bar.close()
    metrics = {"epochs_done": len(history), "epochs_requested": tc.epochs, "stopped_early": stopped_early,
               **{k: v for k, v in (history[-1] if history else {}).items() if k != "epoch"},
               "n_train_traces": int(data.train_idx.size), "train_items_per_epoch": int(pool.size),
               "n_val_traces": int(data.val_idx.size),
               "n_parameters": count_parameters(model), "train_config": tc.to_dict(), "dataset": meta["dataset"],
               "wall_s": time.perf_counter() - t0, "history": history}
    final = surrogate(metrics)
    if val_roll.size:  # the final figures with the decoding the engine uses (hazard draws)
        metrics.update(_closed_loop_scores(final, data.stim[val_roll], data.volt[val_roll], feats_raw[val_roll], dt))
        final.metrics = dict(metrics)
    save_surrogate(final, out_path)
    log.info("wrote %s", out_path)
    return metrics


def _shift_t(spk: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.pad(spk[:, :-1], (1, 0))


def _build(sc: SurrogateConfig, device) -> torch.nn.Module:
    from ..surrogate.model import build_fno

    return build_fno(sc).to(device)

