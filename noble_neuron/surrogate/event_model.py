"""Whole-trace event models at run time: the network's coarse-grid outputs, spike times, the trace.

An event model (``SurrogateConfig.event_output``) outputs, on a grid ``time_coarsening`` times
coarser than the data, the spike phase θ and the interspike voltage (`event_channels`);
`predict_events` (what `Surrogate.predict` runs for these models) decodes θ into spike times (a training
model under one step of its training range takes its own trains instead, `own_step_train`) and
`compose_voltage` draws the trace: each model's own action potential (`noble_neuron.surrogate.decoder`)
pasted on its physics backbone (`noble_neuron.surrogate.backbone`: the linear response below threshold,
the interspike trajectory between spikes) or, for checkpoints without backbones, on the network's
interspike channel.
The ``surrogate`` arguments are event-model `noble_neuron.surrogate.model.Surrogate` objects.
"""
from __future__ import annotations

import numpy as np
import torch

from .decoder import coarse_times_ms, coarsen, compose_traces, spikes_from_phase
from .encoding import AMPLITUDE_THRESHOLD_NA, build_input
from .measured import (MeasuredCell, count_neighbours, fi_neighbours, measured_count, measured_train, rates_at_multiples,
                       stretch_to_count, trains_fi_curve)
from .spectral import fast_fft_length

__all__ = ["compose_voltage", "event_channels", "event_outputs", "predict_events", "spike_times_from_events",
           "neighbour_step_train", "own_step_train", "with_learned_after_step"]


def event_channels(model: torch.nn.Module, inp: torch.Tensor, config) -> tuple[torch.Tensor, torch.Tensor]:
    """(spike phase θ (B, Lc) in spikes, interspike voltage (B, Lc) in mV) of an event model on an encoded
    coarse-grid input (B, C, Lc); `config` its `SurrogateConfig`."""
    width = inp.shape[-1]
    if config.pad_to_fast_length:
        inp = torch.nn.functional.pad(inp, (0, fast_fft_length(width) - width))
    raw = model(inp)[:, :, :width]
    return raw[:, 0] * config.phase_scale, raw[:, 1] * config.v_scale_mV + config.v_offset_mV


def event_outputs(surrogate, x: torch.Tensor, amp_t: torch.Tensor, feat_t: torch.Tensor,
                  batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """An event model's raw outputs on its coarse grid: (event channel (B, Lc), interspike voltage (B, Lc) mV)
    for currents x (B, L) nA at the data dt and scaled amplitudes/features."""
    c, dev = surrogate.config, surrogate.device
    xc = torch.from_numpy(coarsen(x.cpu().numpy(), c.time_coarsening).astype(np.float32))
    n_ref = -(-surrogate.n_samples // c.time_coarsening)
    ev, vb = [], []
    surrogate.model.eval()
    with torch.inference_mode():
        for i in range(0, xc.shape[0], batch_size):
            j = min(i + batch_size, xc.shape[0])
            inp = build_input(xc[i:j].to(dev), amp_t[i:j].to(dev), feat_t[i:j].to(dev), n_ref=n_ref,
                              k_amp=c.k_amp, k_feat=c.k_feat, current_scale_nA=c.current_scale_nA)
            e, v = event_channels(surrogate.model, inp, c)
            if not (bool(torch.isfinite(e).all()) and bool(torch.isfinite(v).all())):
                raise RuntimeError(f"the network produced NaN/inf for items {i}..{j - 1}; the checkpoint may be "
                                   "corrupt or the inputs far outside the training domain")
            ev.append(e.float().cpu().numpy())
            vb.append(v.float().cpu().numpy())
    return np.concatenate(ev), np.concatenate(vb)


#: over the last this many ms of the window θ is held at its value before them: the network's output is least
#: reliable at the window's edges, and a spike decoded there was an artefact in 225 of 2880 traces of
#: pv_draws48.h5, against 7 detailed spikes there (hof_009 recovering from depolarisation block); count
#: error 6.9 → 6.5 % over all its firing traces
EDGE_HOLD_MS = 3.0


def spike_times_from_events(surrogate, event: np.ndarray, onset_ms: np.ndarray) -> list[np.ndarray]:
    """Spike times (ms) per item decoded from an event model's spike phase (B, Lc); θ is held at 0 before
    each item's input onset `onset_ms` (B,) (a cell at rest without input does not fire; the network's
    output near the trace edges is least reliable there) and constant over the last `EDGE_HOLD_MS`."""
    tc = coarse_times_ms(event.shape[1], surrogate.dt_ms, surrogate.config.time_coarsening)
    hold = tc > tc[-1] - EDGE_HOLD_MS
    out = []
    for e, o in zip(event, onset_ms):
        theta = np.where(tc < o, 0.0, e)
        theta[hold] = np.interp(tc[-1] - EDGE_HOLD_MS, tc, theta)
        out.append(spikes_from_phase(theta, tc))
    return out


def predict_events(surrogate, x: torch.Tensor, amp_t: torch.Tensor, feat_t: torch.Tensor,
                   features_raw: np.ndarray, batch_size: int, measured: list | None = None) -> np.ndarray:
    """(B, L) voltages (mV) on the data grid for currents x (B, L) nA, scaled amplitudes/features and the
    raw features (B, F) that choose each item's action potential. Under one step a training model fires its own
    train (`own_step_train`) and a neuron given by features `_feature_cell_train` (its own recorded trains, or its
    nearest training models' with its measured FI curve's count: `measured`, one per item or None). They need the
    network only where those models' steps fired long after the current ended (`ModelBackbone.fires_after_step`)."""
    stim = x.cpu().numpy()
    measured = [None] * stim.shape[0] if measured is None else measured
    spikes: list = [None] * stim.shape[0]
    ends = np.full(stim.shape[0], np.nan)
    needs_network = np.ones(stim.shape[0], dtype=bool)
    ids = sorted(surrogate.backbones)
    if ids:
        near, weights = surrogate.nearest_models(features_raw, ids)
        nearest = near[:, 0]
        own = weights[:, 0] > 1.0 - 1e-6  # the model itself, not a blend of its neighbours
        for r in range(stim.shape[0]) if surrogate.use_own_step_trains else ():
            if own[r]:
                found = own_step_train(surrogate.backbones[ids[nearest[r]]], stim[r], surrogate.dt_ms)
            else:
                found = _feature_cell_train(surrogate, features_raw[r], measured[r], stim[r])
            if found is not None:
                spikes[r], ends[r], needs_network[r] = found
    v_between = None
    rows = np.flatnonzero(needs_network)
    if rows.size:
        pick = torch.from_numpy(rows).to(x.device)
        event, v_between = event_outputs(surrogate, x[pick], amp_t[pick.to(amp_t.device)],
                                         feat_t[pick.to(feat_t.device)], batch_size)
        on = np.abs(stim[rows]) > AMPLITUDE_THRESHOLD_NA
        onset = np.where(on.any(axis=1), on.argmax(axis=1) * surrogate.dt_ms, np.inf)
        learned = spike_times_from_events(surrogate, event, onset)
        if ids:
            from .backbone import spikes_the_cell_fires

            cells = [measured[r].backbone if isinstance(measured[r], MeasuredCell) else None for r in rows]
            for j in np.unique(nearest[rows]):
                mine = np.flatnonzero((nearest[rows] == j) & np.array([c is None for c in cells]))
                kept = spikes_the_cell_fires(surrogate.backbones[ids[j]], stim[rows[mine]], [learned[m] for m in mine])
                for m, st in zip(mine, kept):
                    learned[m] = st
            for m, cell in enumerate(cells):  # a measured cell's own backbone decides which spikes it fires
                if cell is not None:
                    learned[m] = spikes_the_cell_fires(cell, stim[rows[m:m + 1]], [learned[m]])[0]
        for r, st in zip(rows, learned):
            spikes[r] = st if spikes[r] is None else with_learned_after_step(spikes[r], ends[r], st)
    return compose_voltage(surrogate, stim, spikes, features_raw, v_between, measured)


def _feature_cell_train(surrogate, features: np.ndarray, measured, stim_nA: np.ndarray
                        ) -> tuple[np.ndarray, float, bool] | None:
    """(spike times ms, end of the step ms, whether the network's spikes after it are wanted) of a neuron given by
    raw features (F,) under a current (L,) nA, or None where it is not one step: its own recorded trains where they
    cover the step (`measured.recorded_trains`, or a `MeasuredCell`'s, whose rebound is its own;
    `measured.measured_train`: across wide gaps, where the neurons that fire its measured counts disagree with
    them, theirs); else the trains of its nearest neurons with trains (training models and reference neurons,
    `references.train_sources`: in features, or, given its FI curve (the recorded trains' own beyond their
    amplitudes), in rheobase and FI points) stretched to that curve's count (`neighbour_step_train`, `measured`)."""
    from .decoder import nearest_weights
    from .references import sources_fi_table, train_sources
    from .step_trains import StepTrains, single_step

    dt = surrogate.dt_ms
    step = single_step(stim_nA, dt)
    ids, points, sources = train_sources(surrogate)
    if step is None or not ids:
        return None
    amp, onset, dur = step
    scaler = surrogate.feature_scaler
    near, weights = (a[0] for a in nearest_weights(scaler.transform(features[None]), scaler.transform(points)))
    own_backbone = measured.backbone if isinstance(measured, MeasuredCell) else None
    measured = measured if own_backbone is None else own_backbone.trains
    if isinstance(measured, StepTrains):
        # a recorded step's duration, read off its samples, may differ from the current's by a sample or two
        if measured.covers(amp, min(dur, measured.dur_ms)) and dur <= measured.dur_ms + 2 * dt:
            after = (own_backbone or sources[near[0]]).fires_after_step(amp)  # rebound: its own, else its nearest's
            by_count, w = _count_neighbours(surrogate, measured, sources)
            return onset + measured_train(measured, sources, by_count, w, amp, min(dur, measured.dur_ms)), \
                onset + dur, after
        measured = trains_fi_curve(measured)
    names = list(surrogate.config.feature_names)
    thr = names.index("I_thr_nA") if "I_thr_nA" in names else None
    fi_points = None if measured is None or thr is None else rates_at_multiples(measured, features[thr])
    if fi_points is not None and np.isfinite(fi_points).any():
        near, weights = fi_neighbours(np.r_[features[thr], fi_points], sources_fi_table(surrogate, thr))
    rheobases = [0.0 if thr is None else points[j, thr] for j in near]
    found = neighbour_step_train([sources[j] for j in near], weights,
                                 0.0 if thr is None else features[thr], rheobases, stim_nA, dt)
    n = None if found is None or measured is None else measured_count(measured, amp, dur)
    if n is not None:  # the neighbours' train stretched to the count the neuron's own FI curve gives
        found = (onset + stretch_to_count(found[0] - onset, n, dur), *found[1:])
    return found


def _count_neighbours(surrogate, trains, sources) -> tuple[np.ndarray, np.ndarray]:
    """`measured.count_neighbours` of a measured neuron's trains, cached per trains object (a neuron's many steps)."""
    own = [i for i, src in enumerate(sources) if src.trains is trains]
    if own:  # a population neuron's (sample, from_twins) own trains: itself
        return np.array(own[:1]), np.ones(1)
    cache = surrogate.__dict__.setdefault("_count_neighbours", {})
    hit = cache.get(id(trains))
    if hit is None or hit[0] is not trains or hit[1] is not sources:
        if len(cache) > 256:
            cache.clear()
        hit = cache[id(trains)] = (trains, sources, *count_neighbours(trains, sources))
    return hit[2], hit[3]


#: a learned spike after the step is kept beside the model's own train only this long (ms) after its last spike
OWN_TRAIN_GAP_MS = 2.0


def own_step_train(backbone, stim_nA: np.ndarray, dt_ms: float) -> tuple[np.ndarray, float, bool] | None:
    """(spike times ms, end of the step ms, whether the network's spikes after the step are wanted) of a training
    model's own train under a current (L,) nA (`noble_neuron.surrogate.step_trains`), or None where that current
    is not one step its training steps cover. Its spikes on their upstroke as the current ends are left out (43 in
    the 15 ms after the 450 held-out steps of pv_draws48.h5: of the network's 57 there 14 were within 2 ms of one,
    and the train's next spike tells 4 of them with a 1 ms commitment window); later ones, where its own training
    steps fired there, come from the network (`with_learned_after_step`)."""
    from .step_trains import single_step

    step = single_step(stim_nA, dt_ms)
    if backbone.trains is None or step is None or not backbone.trains.covers(step[0], step[2]):
        return None
    amp, onset, dur = step
    return onset + backbone.trains.train(amp, dur), onset + dur, backbone.fires_after_step(amp)


def neighbour_step_train(neighbours: list, weights: np.ndarray, rheobase_nA: float, neighbour_rheobases_nA: list,
                         stim_nA: np.ndarray, dt_ms: float) -> tuple[np.ndarray, float, bool] | None:
    """Like `own_step_train` for a neuron given by features (rheobase `rheobase_nA`): the trains of its nearest
    training models (backbones, weights summing to 1) at the same distance from their own rheobase, clipped to their
    training amplitudes, blended (`noble_neuron.surrogate.step_trains.blend_trains`); None where the current is not
    one step or a neighbour has no trains of that duration. On the 10 unseen models of pv_draws48.h5: spike-count
    error 31 → 24 %, FI error 23.5 → 18.5 Hz, order-matched timing 25 → 17 ms against the network's θ with the
    50 training models as neighbours; 20 %, 13.6 Hz with 399 reference neurons besides (`references`, docs/surrogate.md)."""
    from .step_trains import blend_trains, single_step

    step = single_step(stim_nA, dt_ms)
    if step is None:
        return None
    amp, onset, dur = step
    trains, after = [], False
    for backbone, own_rheobase in zip(neighbours, neighbour_rheobases_nA):
        table = backbone.trains
        if table is None or dur > table.dur_ms + 1e-9:
            return None
        a = float(np.clip(amp - rheobase_nA + own_rheobase, table.amps_nA[0], table.amps_nA[-1]))
        trains.append(table.train(a, dur))
        after = after or backbone.fires_after_step(a)
    blended = blend_trains(trains, weights)
    return onset + blended[blended < dur], onset + dur, after


def with_learned_after_step(own_ms: np.ndarray, end_ms: float, learned_ms: np.ndarray) -> np.ndarray:
    """A model's own train (ms) and the learned spikes from `AFTER_STEP_SPIKE_MS` after its step ended at `end_ms`
    (rebound, release from depolarisation block), after its last spike."""
    from .backbone import AFTER_STEP_SPIKE_MS

    after = learned_ms[learned_ms >= end_ms + AFTER_STEP_SPIKE_MS]
    if own_ms.size:
        after = after[after > own_ms[-1] + OWN_TRAIN_GAP_MS]
    return np.concatenate([own_ms, after])


#: on a backbone, an action potential is pasted up to this long after its crossing (ms: upstroke, peak, most of the
#: downstroke) and joins the backbone's own fast AHP (that of its interval) within BACKBONE_AP_RECOVERY_MS. The whole
#: template through its average trough instead: held-out amplitudes with NEURON's spike times, AHP depth error 25 →
#: 13 %, between-spike RMSE 0.38 → 0.23 mV, rel L2 1.32 → 1.28 %
BACKBONE_AP_MS = 0.8
BACKBONE_AP_RECOVERY_MS = 0.2


def compose_voltage(surrogate, stim_nA: np.ndarray, spikes: list[np.ndarray], features_raw: np.ndarray,
                    v_between_coarse: np.ndarray | None = None, measured: list | None = None) -> np.ndarray:
    """(B, L) voltages (mV) for currents (B, L) nA and spike times (ms) per item: each item's action potential
    pasted on the backbone's voltage between spikes (the 3 training models nearest to its features, blended;
    a training model's own features give its own backbone; a `MeasuredCell` in `measured` its own backbone and
    action potential) or, for a checkpoint without backbones, on the network's coarse interspike channel
    `v_between_coarse` (B, Lc)."""
    c = surrogate.config
    templates = surrogate.templates_for(features_raw)
    cells = {r: m for r, m in enumerate(measured or ()) if isinstance(m, MeasuredCell)}
    for r, cell in cells.items():
        if abs(cell.backbone.dt_ms - surrogate.dt_ms) > 1e-9:
            raise ValueError(f"a measured cell's backbone is on a {cell.backbone.dt_ms} ms grid, this checkpoint's on "
                             f"{surrogate.dt_ms} ms: measure it with this checkpoint")
        if cell.ap_template_mV is not None:
            if cell.ap_template_mV.shape != templates.shape[1:]:
                raise ValueError(f"a measured cell's action potential has {cell.ap_template_mV.size} samples, this "
                                 f"checkpoint's window {templates.shape[1]}: measure it with this checkpoint")
            templates[r] = cell.ap_template_mV
    if not surrogate.backbones:
        if v_between_coarse is None:
            raise ValueError("this checkpoint has no backbone: pass the network's interspike voltage")
        return compose_traces(v_between_coarse, spikes, templates, c.ap_pre_ms, surrogate.dt_ms,
                              c.time_coarsening, stim_nA.shape[1])
    from .backbone import compose_between
    from .decoder import paste_action_potentials

    ids = sorted(surrogate.backbones)
    near, weights = surrogate.nearest_models(features_raw, ids)
    weights = np.where(weights < 1e-6, 0.0, weights)  # a training model's own features: its own backbone alone
    weights /= weights.sum(axis=1, keepdims=True)
    near = np.where(weights > 0, near, -1)
    between = np.zeros(stim_nA.shape)
    for r, cell in cells.items():
        near[r] = -1
        between[r] = compose_between(cell.backbone, stim_nA[r:r + 1], [spikes[r]])[0]
    for j in np.unique(near[near >= 0]):
        rows, slot = np.nonzero(near == j)
        between[rows] += weights[rows, slot, None] * compose_between(surrogate.backbones[ids[j]], stim_nA[rows],
                                                                      [spikes[r] for r in rows])
    n = int(round((c.ap_pre_ms + BACKBONE_AP_MS) / surrogate.dt_ms)) + 1
    return paste_action_potentials(between, spikes, templates[:, :n], c.ap_pre_ms, surrogate.dt_ms,
                                   recovery_ms=BACKBONE_AP_RECOVERY_MS)
