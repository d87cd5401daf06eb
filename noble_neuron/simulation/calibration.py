"""Per-model calibration before data generation: the resting potential and the rheobase.

* `resting_potential`: the soma voltage of the unstimulated cell at steady state; with
  ``v_init="auto"`` every protocol starts from that steady state (NEURON's default v_init of
  −65 mV, or the template's own, leaves most cells relaxing for tens of ms: input resistance
  and first-spike latencies come out wrong).
* `rheobase`: the smallest Long Square amplitude (nA) that fires at least one spike, by
  bracketing (doubling) and bisection; `presets.RheobaseRelativeSteps` then draws each
  model's amplitudes relative to it, so any cell type gets a useful amplitude range.

Both run in the datagen workers (`engines.run_chunk`), once per model.
"""
from __future__ import annotations

import logging

import numpy as np

from ..detailed.spec import CellSpec
from ..features.ephys import count_spikes
from ..stimuli.protocols import LONG_SQUARE_DELAY_MS, LONG_SQUARE_DUR_MS, LongSquare
from ..detailed.instantiate import soma_section
from ..errors import SimulationError
from .rest_state import steady_state_initialize
from .simulate import SIM_DT_MS, simulate
from ..constants import SPIKE_THRESHOLD_MV

__all__ = ["resting_potential", "rheobase", "RHEOBASE_TOL_NA", "CHECK_MS"]

log = logging.getLogger(__name__)

CHECK_MS = 200.0  # run without input after the steady-state initialisation: the cell must stay there
DRIFT_TOL_MV = 0.1
RHEOBASE_TOL_NA = 0.002
MAX_RHEOBASE_NA = 20.0


def resting_potential(spec: CellSpec, cell, dt_ms: float = 0.025) -> float:
    """The soma voltage (mV) of the unstimulated cell at steady state (`rest_state.steady_state_initialize` from
    hoc's v_init: the big step, else a settling run), checked by running CHECK_MS without input.

    Raises SimulationError only for a cell with no rest to start from, saying which it does: it fires without
    input (a pacemaker, or a parameter set that is), or it keeps drifting (still moving after
    `rest_state.SETTLE_MAX_MS`, or
    moving away in the check): give ``--v-init <mV>`` to start from a voltage instead."""
    from neuron import h

    h.cvode_active(0)
    h.dt, h.steps_per_ms = dt_ms, 1.0 / dt_ms
    soma = soma_section(cell)
    v_rec = h.Vector().record(soma(0.5)._ref_v, dt_ms)
    try:
        how = steady_state_initialize(h, float(h.v_init), soma.wholetree())
        v_rest = float(soma(0.5).v)
        h.continuerun(CHECK_MS)
        v = v_rec.as_numpy().copy()
    finally:
        del v_rec
    if v.max() > SPIKE_THRESHOLD_MV:
        raise SimulationError(
            f"{spec.model_id}: the cell fires without input (its soma reaches {v.max():.0f} mV within {CHECK_MS:.0f} ms "
            f"of {v_rest:.1f} mV, {_how(how)}): a pacemaker, or a parameter set that is one, has no resting potential; "
            "give --v-init <mV> to start from a voltage instead")
    drift = float(np.max(np.abs(v - v_rest)))
    if drift > DRIFT_TOL_MV or not how.converged:
        raise SimulationError(
            f"{spec.model_id}: the cell has no steady rest: its soma moves {drift:.2f} mV within {CHECK_MS:.0f} ms "
            f"without input from {v_rest:.1f} mV ({_how(how)}); a slow oscillation or a drift (check the leak and "
            "the slow currents), or give --v-init <mV> to start from a voltage instead")
    log.debug("%s: rest %.2f mV (%s)", spec.model_id, v_rest, _how(how))
    return v_rest


def _how(how) -> str:
    if how.method == "big step":
        return "reached by NEURON's big backward-Euler step"
    state = "settled" if how.converged else f"still moving {how.still_moving_mV:.3f} mV per 100 ms"
    return f"the big step did not converge; after running {how.settle_ms / 1000:.1f} s without input it is {state}"


def _fires(spec: CellSpec, cell, amp_nA: float, v_init_mV: float | None, steady_state: bool, delay_ms: float,
           dur_ms: float, sim_dt_ms: float) -> bool:
    p = LongSquare(step_nA=round(float(amp_nA), 6), delay_ms=delay_ms, dur_ms=dur_ms, total_ms=delay_ms + dur_ms + 5.0)
    res = simulate(spec, p, sim_dt_ms, 1, cell=cell, v_init_mV=v_init_mV, steady_state=steady_state)
    return count_spikes(res.v_mV, res.dt_ms, window_ms=(delay_ms, delay_ms + dur_ms + 5.0)) > 0


def rheobase(spec: CellSpec, cell, v_init_mV: float | None = None, *, steady_state: bool = False, delay_ms: float = LONG_SQUARE_DELAY_MS,
             dur_ms: float = LONG_SQUARE_DUR_MS, tol_nA: float = RHEOBASE_TOL_NA, start_nA: float = 0.05,
             sim_dt_ms: float = SIM_DT_MS) -> float:
    """Smallest Long Square amplitude (nA) of `dur_ms` that fires a spike (crossing −20 mV), to `tol_nA`.

    Doubles the amplitude from `start_nA` until the cell fires, then bisects the bracket.
    The upper end of the final bracket is returned. Raises SimulationError if the cell fires at
    0 nA or does not fire up to MAX_RHEOBASE_NA."""
    if not tol_nA > 0:
        raise ValueError(f"tol_nA must be > 0, got {tol_nA!r}")
    args = (v_init_mV, steady_state, delay_ms, dur_ms, sim_dt_ms)
    if _fires(spec, cell, 0.0, *args):
        raise SimulationError(f"{spec.model_id}: fires without input; a rheobase is undefined (is v_init above rest?)")
    lo, hi = 0.0, float(start_nA)
    while not _fires(spec, cell, hi, *args):
        lo, hi = hi, hi * 2
        if hi > MAX_RHEOBASE_NA:
            raise SimulationError(f"{spec.model_id}: no spike for steps up to {lo:.1f} nA ({dur_ms:.0f} ms); the "
                                  "cell may not be excitable (check its sodium conductances), or the soma is not "
                                  "where it spikes")
    while hi - lo > tol_nA:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if _fires(spec, cell, mid, *args) else (mid, hi)
    log.debug("%s: rheobase %.4f nA", spec.model_id, hi)
    return float(np.round(hi, 6))
