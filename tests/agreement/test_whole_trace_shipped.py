"""Shipped whole-trace checkpoint vs the detailed PV model under Long Square steps (real NEURON).

Tolerances are the measured agreement of the shipped CPU-trained checkpoint (docs/surrogate.md, "Event-aware
whole-trace surrogate"), not aspirations; a regression in the checkpoint, the decoder or the engine breaks them.
"""
import gc

import numpy as np
import pytest

from noble_neuron.surrogate.checkpoint import SHIPPED_CHECKPOINT

pytestmark = [pytest.mark.slow,  # shipped-checkpoint agreement: minutes of NEURON
              pytest.mark.usefixtures("clean_engine"),
              pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="no shipped whole-trace checkpoint")]

DELAY_MS, DUR_MS, TSTOP_MS = 15.0, 400.0, 515.0


def _trains(h, make, amps):
    """Spike times (ms, NetCon at -20 mV) during the step for one cell per amplitude, one run."""
    rigs = []
    for a in amps:
        cell = make()
        stim = h.IClamp(cell.soma(0.5))
        stim.delay, stim.dur, stim.amp = DELAY_MS, DUR_MS, float(a)
        nc = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)
        nc.threshold = -20.0
        times = h.Vector()
        nc.record(times)
        rigs.append((cell, stim, nc, times))
    h.dt = 0.02
    h.finitialize(-70)
    h.continuerun(TSTOP_MS)
    out = [t.as_numpy()[(t.as_numpy() >= DELAY_MS) & (t.as_numpy() < DELAY_MS + DUR_MS)].copy() for *_, t in rigs]
    del rigs
    gc.collect()
    return out


def test_training_model_at_amplitudes_between_its_training_draws(h):
    from noble_neuron.detailed.pv_family import get_model
    from noble_neuron.features.spike_metrics import coincidence_gamma
    from noble_neuron.neuron.cell import SurrogateCell

    amps = [0.15, 0.25, 0.3]
    detailed = [_trains(h, lambda: get_model("hof_017").instantiate(), [a])[0] for a in amps]
    surrogate = _trains(h, lambda: SurrogateCell("hof_017"), amps)
    counts_d, counts_s = np.array([t.size for t in detailed]), np.array([t.size for t in surrogate])
    assert counts_d.min() > 0
    # the bar: counts within 1 at 0.3 nA, every rate within 5 Hz (2 spikes in the 400 ms step)
    assert abs(int(counts_s[-1]) - int(counts_d[-1])) <= 1, (counts_d, counts_s)
    assert np.abs(counts_s - counts_d).max() <= 2, (counts_d, counts_s)
    # in phase to the end of the train (the model's own step trains): Γ(±1 ms) ≥ 0.9, issue 25's goal, where the
    # training draws are dense (0.25, 0.3 nA: measured 1.0, 1.0)
    gammas = [coincidence_gamma(d, s, 1.0, DUR_MS) for d, s in zip(detailed, surrogate)]
    assert min(gammas[1:]) >= 0.9, (gammas, detailed, surrogate)
    # 0.15 nA lies in a 27 pA gap between draws (0.145 → 0.172 nA, where its count doubles): the same count, the
    # intervals ~1 % long (measured 3.2 ms at most)
    assert np.abs(surrogate[0] - detailed[0]).max() < 4.0, (detailed[0], surrogate[0])
