"""A neuron measured on its sweeps the way a checkpoint measured its own training neurons (``noble-neuron measure``).

Features depend on the protocol, not only on the cell (docs/surrogate.md: the same 60 models measured on 16 of their
48 draws move I_thr by +11 pA), so a recorded neuron's features are read off its own step trains at the amplitudes
of the checkpoint's feature protocol (`features_on_protocol`), as the reference neurons' are. With voltage on its
sweeps the neuron also gets its own physics backbone and action potential (`surrogate.measured.MeasuredCell`):
the surrogate then draws its own subthreshold response, interspike trajectory and spike shape instead of a blend of
its nearest training neurons'. The result is a `MeasuredNeuron`, saved as JSON, that `SurrogateCell(neuron=...)`
takes.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .json_file import read_json, write_json
from .sweeps import StepSweeps

__all__ = ["MeasuredNeuron", "measure_neuron", "measure_file", "features_on_protocol", "protocol_amplitudes", "load_neuron",
           "FORMAT"]

log = logging.getLogger(__name__)

FORMAT = "noble_neuron.measured_neuron/1"


def protocol_amplitudes(preset: str, n_draws: int = 64) -> np.ndarray:
    """The typical amplitudes (nA, ascending) of a per-model preset (`stimuli.presets.PER_MODEL_PRESETS`): each
    rank's mean over `n_draws` models' draws (for the stratified draws: the bins' centres)."""
    from ..stimuli.presets import PER_MODEL_PRESETS

    if preset not in PER_MODEL_PRESETS:
        raise ValueError(f"feature protocol {preset!r} is not a per-model preset; choose one of "
                         f"{sorted(PER_MODEL_PRESETS)}, a list of amplitudes (nA), or None (the sweeps' own)")
    draws = [np.sort([p.step_nA for p in PER_MODEL_PRESETS[preset](m)]) for m in range(n_draws)]
    return np.mean(draws, axis=0)


def features_on_protocol(names: list[str], amps_nA: np.ndarray, traces_mV: np.ndarray | None, trains, dt_ms: float,
                         protocol_amps_nA: np.ndarray, stim_start_ms: float, stim_dur_ms: float,
                         rate_dur_ms: float | None = None) -> np.ndarray:
    """A neuron's features `names` (raw) as another amplitude protocol would have measured them.

    Features depend on the protocol, not only on the cell: the 60 family models measured on 16 of their 48 draws
    move I_thr by +11 pA and the rate at 2 × I_thr by +22 Hz (a coarser grid finds the first firing step later), and
    neighbours chosen on such features fire trains 13 points further off (docs/surrogate.md). So the FI features
    (I_thr, s_thr, rates at k × I_thr) are measured on `protocol_amps_nA` (nA), reading the neuron's interpolated
    step trains (`StepTrains`) there, rates over the first `rate_dur_ms` of the step (default `stim_dur_ms`; on the
    family: I_thr bias −0.5 pA, rate at 2 × I_thr −3 Hz); the passive eFEL features on its most negative step, as
    `model_features` does; the spiking ones (AP1_width) as the median over its firing traces (`traces_mV` (N, L) mV
    at `amps_nA`; None: spike times only, those features NaN): one trace's value scatters by ±0.1 ms between
    neighbouring amplitudes, so a single-trace reading moves a neuron across its neighbours at random."""
    from ..features.ephys import (FICurve, SUBTHRESHOLD_EFEL_FEATURES, efel_features, model_features, rate_at,
                                  threshold_current, threshold_slope)
    from ..features.spikes import count_spikes

    rate_dur = stim_dur_ms if rate_dur_ms is None else min(rate_dur_ms, stim_dur_ms)
    efel_names = [n[5:] for n in names if n.startswith("efel.")]
    spiking = [n for n in efel_names if n not in SUBTHRESHOLD_EFEL_FEATURES]  # measured below, on every firing trace
    own = {} if traces_mV is None else model_features(
        amps_nA, traces_mV, dt_ms, stim_start_ms=stim_start_ms, stim_dur_ms=stim_dur_ms,
        efel_names=[n for n in efel_names if n not in spiking])
    grid = np.sort(protocol_amps_nA[(protocol_amps_nA >= trains.amps_nA[0]) & (protocol_amps_nA <= trains.amps_nA[-1])])
    rates = [trains.train(a, min(rate_dur, trains.dur_ms)).size / (rate_dur * 1e-3) if a > 0 else 0.0 for a in grid]
    if grid.size == 0:
        raise ValueError("the sweeps' amplitudes do not overlap the feature protocol's")
    fi = FICurve(grid, np.asarray(rates))
    i_thr = threshold_current(fi)
    out = dict(own) | {"I_thr_nA": i_thr, "s_thr_Hz_per_nA": threshold_slope(fi, i_thr, n_points=3, window_nA=0.1)}
    for name in names:
        if name.startswith("rate_at_") and name.endswith("x_I_thr_Hz"):
            out[name] = rate_at(fi, float(name[len("rate_at_"):-len("x_I_thr_Hz")]) * i_thr)
    window = (stim_start_ms, stim_start_ms + stim_dur_ms)
    firing = [] if traces_mV is None else [i for i, v in enumerate(traces_mV) if count_spikes(v, dt_ms, window_ms=window)]
    if spiking and firing:
        got = [efel_features(traces_mV[i], dt_ms, stim_start_ms, stim_start_ms + stim_dur_ms, float(amps_nA[i]),
                             spiking) for i in firing]
        for k in spiking:
            values = np.array([g[k] for g in got], dtype=float)
            out[f"efel.{k}"] = float(np.median(values[np.isfinite(values)])) if np.isfinite(values).any() else None
    return np.array([np.nan if out.get(n) is None else float(out[n]) for n in names])


@dataclass
class MeasuredNeuron:
    """A neuron measured for one checkpoint: ``features`` {name: raw value} in the checkpoint's feature order,
    ``filled`` the names its sweeps could not give (the training models' median instead), its ``trains``
    (`StepTrains`), and, from sweeps with voltage, its own backbone and action potential (``cell``, a
    `MeasuredCell`; None from spike times alone)."""

    features: dict
    trains: object
    cell: object | None = None
    filled: list = field(default_factory=list)
    feature_protocol: str | None = None
    source: str = ""
    dt_ms: float | None = None  # the checkpoint's grid it was measured on (its backbone's)
    checkpoint: str = ""  # the checkpoint it was measured for (its file name)

    @property
    def measured(self):
        """What `Surrogate.predict(measured=...)` takes for this neuron: its `MeasuredCell`, else its trains."""
        return self.cell if self.cell is not None else self.trains

    def for_surrogate(self, surrogate) -> tuple[np.ndarray, object]:
        """(raw features in the checkpoint's order, what its `predict(measured=...)` takes), refused where the
        neuron was measured for a checkpoint of other features or another time grid."""
        if self.cell is not None and abs(self.cell.backbone.dt_ms - surrogate.dt_ms) > 1e-9:
            raise ValueError(f"the measured neuron's backbone is on a {self.cell.backbone.dt_ms} ms grid (measured for "
                             f"{self.checkpoint or 'another checkpoint'}), this checkpoint's on {surrogate.dt_ms} ms; "
                             "measure it again with this checkpoint (noble-neuron measure --checkpoint ...)")
        return self.feature_vector(surrogate.config.feature_names), self.measured

    def feature_vector(self, names: Sequence[str]) -> np.ndarray:
        missing = [n for n in names if n not in self.features]
        if missing:
            raise ValueError(f"the measured neuron has no {missing}: it was measured for another checkpoint; measure "
                             "it again with this one (noble-neuron measure --checkpoint ...)")
        return np.array([float(self.features[n]) for n in names])

    def to_json(self) -> dict:
        cell = None if self.cell is None else {
            "backbone": self.cell.backbone.to_json(),
            "ap_template_mV": None if self.cell.ap_template_mV is None else np.round(self.cell.ap_template_mV, 4).tolist()}
        return {"format": FORMAT, "source": self.source, "checkpoint": self.checkpoint, "dt_ms": self.dt_ms,
                "feature_protocol": self.feature_protocol,
                "features": {k: float(v) for k, v in self.features.items()}, "filled": list(self.filled),
                "trains": self.trains.to_json(), "cell": cell}

    @classmethod
    def from_json(cls, entry: dict) -> "MeasuredNeuron":
        from ..surrogate.backbone import ModelBackbone
        from ..surrogate.measured import MeasuredCell
        from ..surrogate.step_trains import StepTrains

        if entry.get("format") != FORMAT:
            raise ValueError(f"not a measured neuron ({FORMAT}): format {entry.get('format')!r}; write it with "
                             "noble-neuron measure")
        cell = entry.get("cell")
        if cell is not None:
            cell = MeasuredCell(ModelBackbone.from_json(cell["backbone"]), cell.get("ap_template_mV"))
        return cls(dict(entry["features"]), StepTrains.from_json(entry["trains"]), cell, list(entry.get("filled", [])),
                   entry.get("feature_protocol"), entry.get("source", ""), entry.get("dt_ms"),
                   entry.get("checkpoint", ""))

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_json())


def load_neuron(path: str | Path) -> MeasuredNeuron:
    """A `MeasuredNeuron` from its JSON file (`MeasuredNeuron.save`, ``noble-neuron measure``)."""
    return MeasuredNeuron.from_json(read_json(path, "noble-neuron measure"))


def _checkpoint_protocol(surrogate) -> str | None:
    return (surrogate.metrics.get("references") or {}).get("feature_protocol")


def _training_step_ms(surrogate) -> float | None:
    durs = [b.trains.dur_ms for b in surrogate.backbones.values() if b.trains is not None]
    return float(np.median(durs)) if durs else None


def measure_neuron(sweeps: StepSweeps, surrogate, feature_protocol: str | Sequence[float] | None = "checkpoint",
                   own_cell: bool = True) -> MeasuredNeuron:
    """`sweeps` measured for `surrogate` (a whole-trace event checkpoint): features on `feature_protocol` (a
    per-model preset, amplitudes in nA, None: the sweeps' own amplitudes as a dataset's feature table measures them,
    "checkpoint": the one its reference neurons were measured on, else the sweeps' own), its step trains and, with
    voltage and `own_cell`, its own backbone and action potential. Features the sweeps cannot give (passive ones from
    spike times alone, or without a hyperpolarising step) become the training models' median and are named in
    ``filled`` (with a warning)."""
    from ..features.ephys import model_features

    if not surrogate.config.is_event_model:
        raise ValueError("only a whole-trace event checkpoint (event_output='phase') takes measured neurons")
    names = list(surrogate.config.feature_names)
    if isinstance(feature_protocol, str) and feature_protocol == "checkpoint":
        feature_protocol = _checkpoint_protocol(surrogate)
    sweeps = sweeps.distinct()
    step_ms = _training_step_ms(surrogate)
    if step_ms is not None and sweeps.dur_ms < step_ms - 2 * surrogate.dt_ms:
        warnings.warn(f"{sweeps.source or 'the sweeps'}: steps of {sweeps.dur_ms:g} ms, the checkpoint's are "
                      f"{step_ms:g} ms: rates and trains beyond {sweeps.dur_ms:g} ms are not measured", stacklevel=2)
    on_grid = None
    if sweeps.has_voltage:
        total = sweeps.voltage_mV.shape[1] * sweeps.dt_ms
        on_grid = sweeps if abs(sweeps.dt_ms - surrogate.dt_ms) < 1e-9 else sweeps.resampled(surrogate.dt_ms, total)
    trains = sweeps.trains()
    depolarising = sweeps.amps_nA > 0
    if depolarising.any():
        first = int(np.flatnonzero(depolarising)[np.argmin(sweeps.amps_nA[depolarising])])
        if trains.train(sweeps.amps_nA[first], trains.dur_ms).size:
            warnings.warn(f"{sweeps.source or 'the sweeps'}: the smallest depolarising step "
                          f"({sweeps.amps_nA[first] * 1e3:.0f} pA) already fires, so its rheobase lies below it and "
                          "I_thr is an upper bound; add smaller steps", stacklevel=2)
    traces = None if on_grid is None else on_grid.voltage_mV
    dt = surrogate.dt_ms
    if feature_protocol is None:
        if traces is None:
            raise ValueError("features on the sweeps' own amplitudes need their voltage; give a feature protocol")
        got = model_features(on_grid.amps_nA, traces, dt, stim_start_ms=sweeps.delay_ms, stim_dur_ms=sweeps.dur_ms,
                             efel_names=[n[5:] for n in names if n.startswith("efel.")])
        values = np.array([np.nan if got.get(n) is None else float(got[n]) for n in names])
        label = None
    else:
        amps = (protocol_amplitudes(feature_protocol) if isinstance(feature_protocol, str)
                else np.sort(np.asarray(feature_protocol, dtype=float)))
        values = features_on_protocol(names, sweeps.amps_nA, traces, trains, dt, amps, sweeps.delay_ms,
                                      sweeps.dur_ms, rate_dur_ms=step_ms)
        label = feature_protocol if isinstance(feature_protocol, str) else "amplitudes"
    filled = [n for n, v in zip(names, values) if not np.isfinite(v)]
    if filled:
        ids = [m for m in surrogate.train_model_ids if m in surrogate.model_features]
        median = np.median(np.stack([surrogate.features_of(m) for m in ids]), axis=0)
        values = np.where(np.isfinite(values), values, median)
        warnings.warn(f"{sweeps.source or 'the sweeps'} give no {filled}: the training models' median stands in "
                      "(add a hyperpolarising step and the voltage to measure them)", stacklevel=2)
    cell = _own_cell(on_grid, surrogate, trains) if own_cell and on_grid is not None else None
    return MeasuredNeuron(dict(zip(names, map(float, values))), trains, cell, filled, label, sweeps.source,
                          float(surrogate.dt_ms))


def _own_cell(sweeps: StepSweeps, surrogate, trains):
    """The neuron's `MeasuredCell` from sweeps on the checkpoint's grid, firing `trains` (those of its recorded
    grid), or None (logged) where they cannot give a backbone (fewer than 2 non-firing steps, none firing twice)."""
    from ..features.spikes import spike_times
    from ..surrogate.backbone import fit_model_backbone
    from ..surrogate.decoder import ap_waveform
    from ..surrogate.measured import MeasuredCell

    dt = surrogate.dt_ms
    spikes = [spike_times(v, dt) for v in sweeps.voltage_mV]
    stim = sweeps.stimulus_nA()
    try:
        backbone = fit_model_backbone(stim, sweeps.voltage_mV, dt, spikes)
    except ValueError as exc:
        log.warning("%s: no backbone of its own (%s); its voltage will be its neighbours'", sweeps.source, exc)
        return None
    if backbone.trains is None or backbone.isi_ms.size == 0:
        log.warning("%s: no backbone of its own (no step fires twice); its voltage will be its neighbours'",
                    sweeps.source)
        return None
    backbone.trains = trains  # one set of trains: the recorded grid's spike times, not the resampled grid's
    wave = ap_waveform(sweeps.voltage_mV, spikes, dt, surrogate.config.ap_pre_ms, surrogate.ap_post_ms)
    return MeasuredCell(backbone, wave)


def measure_file(checkpoint, out: str | Path, *, recording: str | Path | None = None, data: str | Path | None = None,
                 model_id: str | None = None, feature_protocol="checkpoint", own_cell: bool = True,
                 stimulus: str | None = None) -> MeasuredNeuron:
    """``noble-neuron measure``: the sweeps of `recording` (`readers.read_sweeps`) or of `model_id` in the dataset
    `data` (`readers.sweeps_from_dataset`; `stimulus`: an NWB file's sweeps of that stimulus description) measured
    for `checkpoint` (a path or a `Surrogate`; `measure_neuron`)
    and saved to `out` (JSON)."""
    from ..surrogate.checkpoint import load_surrogate
    from .readers import read_sweeps, sweeps_from_dataset

    if (recording is None) == (data is None):
        raise ValueError("measure one neuron: give a recording file, or a dataset and a model id")
    sweeps = read_sweeps(recording, stimulus) if recording is not None else sweeps_from_dataset(data, model_id)
    surrogate = checkpoint if hasattr(checkpoint, "predict") else load_surrogate(checkpoint, device="cpu")
    neuron = measure_neuron(sweeps, surrogate, feature_protocol, own_cell=own_cell)
    neuron.checkpoint = Path(checkpoint).name if isinstance(checkpoint, (str, Path)) else ""
    neuron.save(out)
    return neuron
