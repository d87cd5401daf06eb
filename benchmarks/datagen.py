"""Datagen throughput vs bare NEURON on the shipped PV family (515 ms Long Square, dt 0.02 ms).

    python benchmarks/datagen.py [--n-sims 12] [--quick]

bare: one process, the cell built once, plain IClamp + Vector.record + finitialize/continuerun.
datagen: `noble_neuron.simulation.datagen.generate` on the same simulations (serial engine = 1 worker;
pool engine = all cores), including HDF5 writing, journaling and downsampling.
Writes benchmarks/results/datagen.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from noble_neuron.evaluation.machine import machine_info


def bare_neuron(spec, amps, total_ms):
    from neuron import h

    from noble_neuron.detailed.instantiate import instantiate_cell, soma_section

    cell = instantiate_cell(spec)
    soma = soma_section(cell)
    stim = h.IClamp(soma(0.5))
    v = h.Vector().record(soma(0.5)._ref_v)
    h.dt, h.tstop = 0.02, total_ms
    start = time.perf_counter()
    for amp in amps:
        stim.delay, stim.dur, stim.amp = 15.0, 400.0, amp
        h.finitialize(h.v_init)
        h.continuerun(total_ms)
    return time.perf_counter() - start, int(v.size())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-sims", type=int, default=12)
    ap.add_argument("--quick", action="store_true", help="4 short simulations, no JSON")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "datagen.json"))
    args = ap.parse_args()

    from noble_neuron.simulation.datagen import generate
    from noble_neuron.detailed.pv_family import load_family
    from noble_neuron.stimuli.presets import long_square_grid

    n = 4 if args.quick else args.n_sims
    total_ms = 100.0 if args.quick else 515.0
    model = load_family(split="train")[0]
    spec = model.cell_spec()
    amps = np.linspace(-0.1, 0.4, n)
    protocols = long_square_grid(amps, **({"delay_ms": 15.0, "dur_ms": 80.0, "total_ms": total_ms} if args.quick else {}))

    bare_s, n_rec = bare_neuron(spec, [p.step_nA for p in protocols], total_ms)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        generate([spec], protocols, Path(tmp) / "serial.h5", engine="serial", progress=False)
        serial_s = time.perf_counter() - t
        t = time.perf_counter()
        generate([spec], protocols, Path(tmp) / "pool.h5", engine="pool", progress=False)
        pool_s = time.perf_counter() - t
        from noble_neuron.data.dataset import open_dataset

        neuron_s = float(np.sum(open_dataset(Path(tmp) / "serial.h5").wall_s))
    import os

    cores = os.cpu_count() or 1
    result = {
        "what": "515 ms Long Square on the shipped PV model (hof train[0]), fixed step dt 0.02 ms",
        "model_id": model.model_id,
        "n_simulations": n,
        "bare_neuron_s_per_sim": bare_s / n,
        "datagen_serial_s_per_sim": serial_s / n,
        "datagen_serial_neuron_only_s_per_sim": neuron_s / n,
        "orchestration_overhead_serial": serial_s / bare_s - 1.0,
        "datagen_pool_s_per_sim": pool_s / n,
        "pool_workers": cores,
        "pool_throughput_sims_per_s": n / pool_s,
        "pool_efficiency_vs_ideal_bare": (n / pool_s) / (cores / (bare_s / n)),
        "machine": machine_info(),
    }
    print(json.dumps(result, indent=1))
    if not args.quick:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
