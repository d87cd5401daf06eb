"""Start a cell at its resting steady state: NEURON's big backward-Euler step, verified, else settled by running.

The big step (the NEURON book, ch. 8: backward-Euler steps of 1e9 ms at t < 0) is a fixed-point iteration: each
step moves every compartment to the voltage where the currents balance with every gate at its steady state for the
previous voltage. It converges for most cells. A strong slow current that rises steeply as the cell hyperpolarises
(Ih in a long apical dendrite) or a Ca-activated K current fed by Ca accumulation makes it overshoot instead: the
iterates then alternate between two voltages, neither of them the rest (a published L5 pyramidal cell landed 4 mV
off; `tests/data/slow_rest.hoc` alternates between -82 and -64 mV around its -74 mV rest).

So the last two iterates are compared; where any segment still moves, the cell is settled the ordinary way: run
without input (fixed step `SETTLE_DT_MS`, backward Euler, stable at that step for a cell at rest) from the starting
voltage until no segment moves more than `SETTLE_TOL_MV` over `SETTLE_CHUNK_MS`, for at most `SETTLE_MAX_MS`.
Either way t is then 0, dt restored and recordings restarted. Stimuli stay off (t < 0 is before any IClamp delay).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BIG_STEPS", "RestInit", "SETTLE_MAX_MS", "steady_state_initialize"]

BIG_STEPS = 200  # backward-Euler steps of 1e9 ms: enough for Ih-type slow positive feedback (30 are not)
BIG_STEP_TOL_MV = 1e-4  # a converged big step moves no segment more than this in its last iterate
SETTLE_DT_MS, SETTLE_CHUNK_MS, SETTLE_MAX_MS = 1.0, 100.0, 20000.0
SETTLE_TOL_MV = 1e-3  # settled: no segment moved more than this over the last chunk


@dataclass(frozen=True)
class RestInit:
    """How the rest was reached: ``"big step"`` or ``"settled"`` (after `settle_ms` of running without input).

    `still_moving_mV`: the largest change of any segment over the last chunk (big step: its last iterate)."""

    method: str
    settle_ms: float
    still_moving_mV: float

    @property
    def converged(self) -> bool:
        return self.still_moving_mV <= (BIG_STEP_TOL_MV if self.method == "big step" else SETTLE_TOL_MV)


def _segment_voltages(sections) -> np.ndarray:
    return np.array([seg.v for sec in sections for seg in sec])


def _settle(h, v_mV: float, sections) -> RestInit:
    """Run without input from `v_mV` (at t < 0) until every segment stops moving, or for SETTLE_MAX_MS."""
    h.finitialize(float(v_mV))
    h.dt = SETTLE_DT_MS
    steps = int(round(SETTLE_CHUNK_MS / SETTLE_DT_MS))
    h.t = -SETTLE_MAX_MS - SETTLE_CHUNK_MS
    before, elapsed, moved = _segment_voltages(sections), 0.0, float("inf")
    while elapsed < SETTLE_MAX_MS:
        for _ in range(steps):
            h.fadvance()
        elapsed += SETTLE_CHUNK_MS
        now = _segment_voltages(sections)
        moved = float(np.max(np.abs(now - before))) if now.size else 0.0
        before = now
        if moved <= SETTLE_TOL_MV:
            break
    return RestInit("settled", elapsed, moved)


def steady_state_initialize(h, v_mV: float, sections=None) -> RestInit:
    """`finitialize(v_mV)`, then bring every state to the unstimulated cell's steady state before t = 0.

    Fixed step only (CVode off). Convergence is judged on `sections` (a cell's own, e.g. ``soma.wholetree()``;
    None: every section in the process, all of which are initialised). Returns how (`RestInit`); a cell that fires
    or drifts without input ends wherever its last chunk left it (`RestInit.converged` False): the caller decides
    (`calibration.resting_potential`). t and dt are restored whatever happens."""
    sections = list(h.allsec()) if sections is None else list(sections)
    dt = float(h.dt)
    try:
        h.finitialize(float(v_mV))
        h.t, h.dt = -1e12, 1e9
        for _ in range(BIG_STEPS - 1):
            h.fadvance()
        before = _segment_voltages(sections)
        h.fadvance()
        moved = float(np.max(np.abs(_segment_voltages(sections) - before))) if before.size else 0.0
        how = RestInit("big step", 0.0, moved)
        if not how.converged:
            how = _settle(h, v_mV, sections)
    finally:
        h.t, h.dt = 0.0, dt
    h.fcurrent()
    h.frecord_init()
    return how
