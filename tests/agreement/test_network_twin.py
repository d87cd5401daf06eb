"""Shipped network checkpoint vs the detailed PV model under identical synaptic drive (real NEURON).

The shipped checkpoint is input-only with a spike head (docs/network_mode.md).

Tolerances are the measured agreement of the shipped CPU-trained checkpoint (README, network
mode), not aspirations; a regression in the engine or the checkpoint breaks them.
"""

import numpy as np
import pytest

from noble_neuron.surrogate.checkpoint import SHIPPED_NETWORK_CHECKPOINT

pytestmark = [pytest.mark.slow,  # shipped-checkpoint agreement: minutes of NEURON
              pytest.mark.usefixtures("clean_engine"),
              pytest.mark.skipif(not SHIPPED_NETWORK_CHECKPOINT.is_file(), reason="no shipped network checkpoint")]

TSTOP_MS = 200.0


def drive(h, cells, seed):
    """Poisson exc (ExpSyn) + inh (Exp2Syn) input, identical for every cell in `cells`."""
    from noble_neuron.stimuli.synaptic_drive import poisson_synaptic_drive

    return poisson_synaptic_drive(h, cells, seed, rate_exc_Hz=1500.0, rate_inh_Hz=400.0, w_exc_uS=0.0008,
                                  w_inh_uS=0.002, delay_ms=1.5, stream=11)


def spikes(t, v):
    from noble_neuron.features.spikes import spike_times_at

    return spike_times_at(np.asarray(t), np.asarray(v))


def run_twins(h):
    """(t, v_detailed, v_surrogate) of hof_003 and its surrogate twin under identical drive (mV, ms)."""
    from noble_neuron.detailed.pv_family import get_model
    from noble_neuron.neuron.cell import SurrogateCell

    detailed = get_model("hof_003").instantiate()
    twin = SurrogateCell("hof_003", network="streaming")
    keep = drive(h, [detailed, twin], seed=3)
    vd, vs = h.Vector().record(detailed.soma(0.5)._ref_v), h.Vector().record(twin.soma(0.5)._ref_v)
    tv = h.Vector().record(h._ref_t)
    h.dt = 0.025
    h.finitialize(-70)
    h.continuerun(TSTOP_MS)
    del keep, twin, detailed
    return np.array(tv), np.array(vd), np.array(vs)


def test_surrogate_twin_follows_detailed_cell_under_synaptic_drive(h):
    t, vd, vs = run_twins(h)
    sd, ss = spikes(t, vd), spikes(t, vs)
    quiet = np.ones(t.size, dtype=bool)
    for s in np.concatenate([sd, ss]):
        quiet &= ~((t > s - 2) & (t < s + 6))
    rmse = float(np.sqrt(np.mean((vd[quiet] - vs[quiet]) ** 2)))
    assert sd.size >= 1  # the drive makes the detailed cell fire
    assert rmse < SUBTHRESHOLD_RMSE_MV, rmse


def run_population(h, n=8, tstop=300.0):
    """Spike times (ms) of n detailed family cells and their surrogate twins, each pair under its own drive."""
    from noble_neuron.detailed.pv_family import load_family
    from noble_neuron.neuron.cell import SurrogateCell

    models = load_family("train")[:n]
    detailed = [m.instantiate() for m in models]
    twins = [SurrogateCell(m.model_id, network="streaming") for m in models]
    keep, rec = [], []
    for i, (d, s) in enumerate(zip(detailed, twins)):
        keep += drive(h, [d, s], seed=100 + i)
        rec.append((h.Vector().record(d.soma(0.5)._ref_v), h.Vector().record(s.soma(0.5)._ref_v)))
    tv = h.Vector().record(h._ref_t)
    h.dt = 0.025
    h.finitialize(-70)
    h.continuerun(tstop)
    t = np.array(tv)
    out = [(spikes(t, np.array(a)), spikes(t, np.array(b))) for a, b in rec]
    del keep, rec, tv, twins, detailed
    return out


def test_surrogate_twins_fire_at_the_detailed_rate(h):
    """Population rate of 8 twins under 8 different drives: measured 47–52 vs 65 detailed spikes (−20 to −28 %,
    with the cells' spike-draw keys; the streaming checkpoint fires too little at weak, fluctuation-driven
    drive: README), 21 of the 65 with a surrogate spike within 2 ms; tolerances 35 % and 25 %."""
    pairs = run_population(h)
    n_d = sum(a.size for a, _ in pairs)
    n_s = sum(b.size for _, b in pairs)
    hits = sum(int(np.any(np.abs(b - x) <= 2.0)) for a, b in pairs for x in a)
    print("twins: detailed", n_d, "surrogate", n_s, "hits", hits)
    assert n_d >= 20  # the drive makes the detailed cells fire
    assert abs(n_s - n_d) <= 0.35 * n_d, (n_d, n_s)
    # spikes are not placed at random: a share of detailed spikes have a surrogate spike within 2 ms
    assert hits >= HITS_FRACTION * n_d, (hits, n_d)


@pytest.mark.xfail(strict=True, reason="known gap (docs/network_mode.md): spike timing of the CPU-trained network "
                                       "checkpoint, median coincidence Gamma 0.0-0.5 vs the 0.9 goal; strict, so a "
                                       "fix must update this")
def test_surrogate_twins_spike_timing_meets_the_goal(h):
    from noble_neuron.features.spike_metrics import coincidence_gamma

    pairs = run_population(h, n=4, tstop=200.0)
    assert np.median([coincidence_gamma(a, b, 2.0, 200.0) for a, b in pairs]) >= 0.9


def test_surrogate_fires_through_a_long_step(h):
    """Tonic firing under a held current: the streaming model's own spikes keep the phase (the previous,
    input-only sliding-window checkpoint fell silent after ~60 ms)."""
    from noble_neuron.neuron.cell import SurrogateCell

    twin = SurrogateCell("hof_003", network="streaming")
    stim = h.IClamp(twin.soma(0.5))
    stim.delay, stim.dur, stim.amp = 10.0, 300.0, 0.3
    v, tv = h.Vector().record(twin.soma(0.5)._ref_v), h.Vector().record(h._ref_t)
    h.dt = 0.025
    h.finitialize(-70)
    h.continuerun(300)
    late = spikes(np.array(tv), np.array(v))
    del stim, twin, v, tv
    assert np.sum(late > 150.0) >= 5  # the detailed hof_003 fires tonically at this amplitude


def test_surrogate_fires_at_the_detailed_rate_through_a_2s_step(h):
    """A run of 2 s (runs of any length) under a held current, detailed twin in the same run: the rate stays within
    10 % to the end (benchmarks/results/network_steps_2000ms.json: 102.7 vs 101.2 Hz over 20 cells)."""
    from noble_neuron.detailed.pv_family import get_model
    from noble_neuron.neuron.cell import SurrogateCell

    detailed, twin = get_model("hof_003").instantiate(), SurrogateCell("hof_003", network="streaming")
    keep, rec = [], []
    for cell in (detailed, twin):
        stim = h.IClamp(cell.soma(0.5))
        stim.delay, stim.dur, stim.amp = 15.0, 1900.0, 0.25
        keep.append(stim)
        rec.append(h.Vector().record(cell.soma(0.5)._ref_v))
    tv = h.Vector().record(h._ref_t)
    h.dt = 0.025
    h.finitialize(-70)
    h.continuerun(2015.0)
    t = np.array(tv)
    sd, ss = spikes(t, np.array(rec[0])), spikes(t, np.array(rec[1]))
    del keep, twin, detailed
    assert sd.size >= 50
    assert abs(ss.size - sd.size) <= 0.1 * sd.size, (sd.size, ss.size)
    assert np.sum(ss > 1500.0) >= 0.8 * np.sum(sd > 1500.0)  # still firing at the end of the step


# measured with the shipped checkpoint: 1.2 mV median over 20 cells (benchmarks/results/network.json), 1.4 mV
# for this pair
SUBTHRESHOLD_RMSE_MV = 2.5
HITS_FRACTION = 0.25  # measured 0.32 (21 of 65)


def test_spikes_flow_detailed_to_surrogate_to_detailed(h):
    """A firing detailed cell drives a surrogate through a synapse; the surrogate's spikes reach a detailed cell."""
    from noble_neuron.detailed.pv_family import get_model
    from noble_neuron.neuron.cell import SurrogateCell

    pre, post = get_model("hof_001").instantiate(), get_model("hof_002").instantiate()
    mid = SurrogateCell("hof_003", network="streaming")
    stim = h.IClamp(pre.soma(0.5))
    stim.delay, stim.dur, stim.amp = 5.0, 80.0, 0.4
    syn_mid = h.ExpSyn(mid.soma(0.5))
    syn_mid.tau, syn_mid.e = 2.0, 0.0
    nc1 = h.NetCon(pre.soma(0.5)._ref_v, syn_mid, sec=pre.soma)
    nc1.threshold, nc1.delay, nc1.weight[0] = -20.0, 2.0, 0.03
    syn_post = h.ExpSyn(post.soma(0.5))
    nc2 = h.NetCon(mid.soma(0.5)._ref_v, syn_post, sec=mid.soma)
    nc2.threshold, nc2.delay, nc2.weight[0] = -20.0, 2.0, 0.01
    t_pre, t_mid = h.Vector(), h.Vector()
    nc1.record(t_pre)
    nc2.record(t_mid)
    g_post, tv = h.Vector().record(syn_post._ref_g), h.Vector().record(h._ref_t)
    h.dt = 0.025
    h.finitialize(-70)
    h.continuerun(100)
    t_pre, t_mid, g, t = np.array(t_pre), np.array(t_mid), np.array(g_post), np.array(tv)
    del g_post, tv
    del nc1, nc2, syn_mid, syn_post, stim, mid, pre, post
    assert t_pre.size >= 5
    assert t_mid.size >= 1 and t_mid[0] > t_pre[0] + 2.0  # the surrogate fires only after input arrives
    first = t[np.flatnonzero(g > 0)[0]]
    assert first == pytest.approx(t_mid[0] + 2.0, abs=0.05)  # its spike reaches the detailed cell after the delay
