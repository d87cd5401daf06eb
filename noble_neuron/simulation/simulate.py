"""Run one (detailed cell, protocol) pair in NEURON: the somatic voltage trace (mV) and current (nA).

NOBLE's recording: fixed step 0.02 ms, low-pass filtered and decimated ×3 to 0.06 ms. A cell
starts from hoc's v_init, a given voltage, or its steady state (`rest_state.steady_state_initialize`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..detailed.instantiate import apply_globals, instantiate_cell, soma_section
from ..detailed.spec import CellSpec
from ..errors import SimulationError
from ..stimuli.protocols import LongSquare, Protocol, n_samples
from .rest_state import steady_state_initialize

__all__ = ["SIM_DT_MS", "DOWNSAMPLE", "SimulationResult", "simulate", "steady_state_initialize", "downsample_trace"]

SIM_DT_MS = 0.02
DOWNSAMPLE = 3


def downsample_trace(x: np.ndarray, factor: int, n_out: int) -> np.ndarray:
    """Low-pass (linear-phase FIR, aligned) and decimate by `factor`, keeping `n_out` samples.

    Edges are extended linearly before filtering: zero padding would pull the first and
    last samples of a −70 mV trace towards 0 mV.
    """
    if factor == 1:
        return np.asarray(x[:n_out], dtype=float)
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(x, dtype=float), 1, factor, padtype="line")[:n_out]


@dataclass(frozen=True)
class SimulationResult:
    """Somatic voltage (mV) and injected current (nA) sampled every dt_ms from t = 0."""

    v_mV: np.ndarray
    i_nA: np.ndarray
    dt_ms: float
    wall_s: float


def simulate(
    spec: CellSpec,
    protocol: Protocol,
    sim_dt_ms: float = SIM_DT_MS,
    downsample: int = DOWNSAMPLE,
    cvode: bool = False,
    cell=None,
    v_init_mV: float | None = None,
    steady_state: bool = False,
) -> SimulationResult:
    """Simulate `protocol` on the soma of `spec` (fixed step `sim_dt_ms` unless cvode).

    ``v_init_mV``: the initial voltage (e.g. the model's rest found by `calibration.resting_potential`);
    None → hoc's ``v_init`` (NEURON's default, or the model's ``global.v_init``).
    ``steady_state``: start from the cell's steady state (`steady_state_initialize`) instead of a
    uniform voltage (fixed step only).

    The trace is recorded every sim_dt_ms, low-pass filtered and decimated by `downsample`
    (NOBLE: 0.02 ms → 0.06 ms, 8583 samples for 515 ms). Pass `cell` to reuse an
    already instantiated cell of the same spec.
    """
    if not isinstance(downsample, int) or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    n_sim = n_samples(protocol.total_ms, sim_dt_ms)
    out_dt = sim_dt_ms * downsample
    n_out = n_samples(protocol.total_ms, out_dt)
    from neuron import h

    if cell is None:
        cell = instantiate_cell(spec)
    else:
        apply_globals(h, spec.parameters, spec.model_id)  # another model may have changed them since
    soma = soma_section(cell)
    stim = h.IClamp(soma(0.5))
    played = None
    if isinstance(protocol, LongSquare):
        stim.delay, stim.dur, stim.amp = protocol.delay_ms, protocol.dur_ms, protocol.step_nA
    else:
        stim.delay, stim.dur = 0.0, 1e9
        i_sim = protocol.render(sim_dt_ms)
        played = (h.Vector(i_sim), h.Vector(np.arange(n_sim) * sim_dt_ms))
        played[0].play(stim._ref_amp, played[1], 1)
    v_rec = h.Vector().record(soma(0.5)._ref_v, sim_dt_ms)
    h.dt = sim_dt_ms
    h.steps_per_ms = 1.0 / sim_dt_ms
    h.tstop = protocol.total_ms
    h.cvode_active(1 if cvode else 0)
    start = time.perf_counter()
    try:
        v0 = h.v_init if v_init_mV is None else float(v_init_mV)
        if steady_state and not cvode:
            steady_state_initialize(h, v0, soma.wholetree())
        else:
            h.finitialize(v0)
        h.continuerun(protocol.total_ms)
    finally:
        wall = time.perf_counter() - start
        h.cvode_active(0)
    v = v_rec.as_numpy()[:n_sim].copy()
    del stim, played
    if v.size < n_sim or not np.all(np.isfinite(v)):
        raise SimulationError(
            f"{spec.model_id}: simulation of {protocol.kind} amp={protocol.amp_nA} nA produced "
            f"{'too few samples' if v.size < n_sim else 'NaN/Inf voltages'} (unstable parameters or dt too large)"
        )
    v_out = downsample_trace(v, downsample, n_out).astype(np.float32)
    i_out = protocol.render(out_dt).astype(np.float32)
    return SimulationResult(v_mV=v_out, i_nA=i_out, dt_ms=out_dt, wall_s=wall)
