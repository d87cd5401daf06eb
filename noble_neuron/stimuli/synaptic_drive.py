"""Identical Poisson synaptic drive for several cells (detailed twins and surrogates side by side).

NEURON-facing helper used by benchmarks/network.py and the agreement tests: one excitatory
(ExpSyn, tau 2 ms, e 0 mV) and one inhibitory (Exp2Syn, 0.5/6 ms, e -75 mV) Poisson source,
each feeding a synapse on the soma of EVERY given cell through its own NetCon, so all of them
see the same event times. Sources are NetStims driven by Random123 streams (reproducible on
any number of MPI ranks).
"""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["EXC_SYNAPSE", "INH_SYNAPSE", "VARIED_DELAY_MS", "VARIED_DRIVE", "poisson_sources_drive",
           "poisson_synaptic_drive"]

EXC_SYNAPSE = {"kind": "ExpSyn", "tau": 2.0, "e": 0.0}
INH_SYNAPSE = {"kind": "Exp2Syn", "tau1": 0.5, "tau2": 6.0, "e": -75.0}


#: a drive unlike the benchmark's own (what a user's network may look like): three excitatory sources with
#: other kinetics and weights, slower inhibition with a lower reversal, a longer delay.
#: (rate Hz, weight uS, synapse) per source.
VARIED_DRIVE = (
    (600.0, 0.0008, {"kind": "ExpSyn", "tau": 3.0, "e": 0.0}),
    (300.0, 0.0012, {"kind": "Exp2Syn", "tau1": 0.5, "tau2": 5.0, "e": 0.0}),
    (100.0, 0.0008, {"kind": "Exp2Syn", "tau1": 1.0, "tau2": 10.0, "e": 0.0}),
    (500.0, 0.0012, {"kind": "Exp2Syn", "tau1": 1.0, "tau2": 10.0, "e": -85.0}),
)
VARIED_DELAY_MS = 3.0


def poisson_synaptic_drive(h: Any, cells: Sequence[Any], seed: int, *, rate_exc_Hz: float, rate_inh_Hz: float,
                           w_exc_uS: float, w_inh_uS: float, delay_ms: float = 1.5, stream: int = 7) -> list:
    """Connect one exc and one inh Poisson source (rates in Hz) to the soma of every cell in `cells`.

    Weights are peak conductances in uS; ``seed`` and ``stream`` pick the Random123 streams.
    Returns the NEURON objects (sources, generators, synapses, NetCons) the caller must keep alive.
    """
    return poisson_sources_drive(h, cells, seed, ((rate_exc_Hz, w_exc_uS, EXC_SYNAPSE),
                                                  (rate_inh_Hz, w_inh_uS, INH_SYNAPSE)), delay_ms, stream)


def poisson_sources_drive(h: Any, cells: Sequence[Any], seed: int, sources, delay_ms: float, stream: int = 7) -> list:
    """Like `poisson_synaptic_drive` for any list of (rate Hz, peak conductance uS, synapse spec) sources."""
    keep: list = []
    for k, (rate, w, spec) in enumerate(sources):
        if not rate > 0:
            raise ValueError(f"Poisson rates must be > 0 Hz, got {rate!r}")
        src, rng = h.NetStim(), h.Random()
        src.interval, src.number, src.start, src.noise = 1000.0 / rate, 1e9, 0.0, 1
        rng.Random123(int(seed), k, int(stream))
        rng.negexp(1)
        src.noiseFromRandom(rng)
        keep += [src, rng]
        for cell in cells:
            syn = getattr(h, spec["kind"])(cell.soma(0.5))
            for name, value in spec.items():
                if name != "kind":
                    setattr(syn, name, value)
            nc = h.NetCon(src, syn)
            nc.delay, nc.weight[0] = delay_ms, w
            keep += [syn, nc]
    return keep
