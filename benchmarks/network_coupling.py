"""Coupling or model? The detailed cells' own synaptic current replayed offline into the network model and the AdEx.

    python benchmarks/network_coupling.py      # 20 cells, 1 s, the network benchmark's standard drive (~1 min)

In NEURON a surrogate's synapses see the surrogate's own voltage (i = −g(t)·(v − e), the driving force
from the model's voltage). Where network-mode rates miss, is that coupling to blame, or the model's
response to such input? This runs the detailed twins alone under the benchmark's drive (same seeds,
weights and kinetics as benchmarks/network.py), records the total synaptic current each soma receives,
and replays it as a current clamp — no coupling — into the streaming checkpoint (exactly as the engine
runs it, `noble_neuron.training.rollout`) and into each model's fitted AdEx. If the rates miss by the
same amount with the exact current, the model is to blame and conductance input channels would not help.
→ benchmarks/results/network_coupling.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from noble_neuron.evaluation.machine import machine_info
from noble_neuron.features.spike_metrics import coincidence_gamma
from noble_neuron.features.spikes import spike_times_at

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--tstop", type=float, default=1000.0, help="ms")
    ap.add_argument("--checkpoint", default=None, help="streaming network checkpoint (default: the shipped one)")
    ap.add_argument("--out", default=str(RESULTS / "network_coupling.json"))
    args = ap.parse_args()

    from neuron import h

    from noble_neuron.baselines.adex import load_fits, simulate_adex
    from noble_neuron.detailed.pv_family import get_model, load_family
    from noble_neuron.stimuli.synaptic_drive import poisson_synaptic_drive
    from noble_neuron.surrogate.checkpoint import SHIPPED_NETWORK_CHECKPOINT, load_surrogate
    from noble_neuron.training.rollout import streaming_rollout

    h.load_file("stdrun.hoc")
    family = [m.model_id for m in load_family("train")] + [m.model_id for m in load_family("unseen")]
    ids = [family[i % len(family)] for i in range(args.cells)]
    cells = [get_model(m).instantiate() for m in ids]
    keep, i_rec, v_rec = [], [], []
    for k, cell in enumerate(cells):  # the benchmark's standard drive: same seeds, rates, weights, delay
        objs = poisson_synaptic_drive(h, [cell], seed=k, rate_exc_Hz=1200.0, rate_inh_Hz=400.0, w_exc_uS=0.0008,
                                      w_inh_uS=0.002, delay_ms=1.5)
        keep += objs
        synapses = [o for o in objs if o.hname().startswith(("ExpSyn", "Exp2Syn"))]
        i_rec.append([h.Vector().record(s._ref_i) for s in synapses])
        v_rec.append(h.Vector().record(cell.soma(0.5)._ref_v))
    t_rec = h.Vector().record(h._ref_t)
    h.cvode_active(0)
    h.dt = 0.02
    h.finitialize(-70)
    h.continuerun(args.tstop)
    t = np.array(t_rec)

    s = load_surrogate(args.checkpoint or SHIPPED_NETWORK_CHECKPOINT, device="cpu")
    grid = np.arange(0.0, args.tstop, s.dt_ms)
    current = np.array([np.interp(grid, t, -sum(np.array(r) for r in rec)) for rec in i_rec])  # nA into the soma
    v = np.array([np.interp(grid, t, np.array(r)) for r in v_rec])
    _, surrogate_spikes = streaming_rollout(s, current, np.array([s.features_of(m) for m in ids]), v[:, 0])
    fits = load_fits()
    _, adex_spikes = simulate_adex([fits[m] for m in ids], current, s.dt_ms, v0_mV=v[:, 0], substeps=3)
    detailed = [spike_times_at(grid, row) for row in v]

    def figures(trains) -> dict:
        trains = [np.asarray(x) for x in trains]
        return {"rate_Hz_mean": float(np.mean([x.size for x in trains]) * 1000.0 / args.tstop),
                "gamma_2ms_median": float(np.median([coincidence_gamma(d, x, 2.0, args.tstop)
                                                     for d, x in zip(detailed, trains)]))}

    result = {"machine": machine_info(), "n_cells": args.cells, "tstop_ms": args.tstop,
              "input": "benchmarks/network.py standard drive, the detailed cells' synaptic current replayed",
              "checkpoint": "noble_neuron/checkpoints/pv_fno_network.pt" if args.checkpoint is None else
              Path(args.checkpoint).name,
              "current_nA_mean": float(current.mean()), "current_nA_sd": float(current.std()),
              "rate_Hz_detailed_mean": float(np.mean([d.size for d in detailed]) * 1000.0 / args.tstop),
              "surrogate_current_replayed": figures(surrogate_spikes), "adex_current_replayed": figures(adex_spikes)}
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
