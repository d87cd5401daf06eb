"""Swap the PV population of a small cortical E-I NetPyNE network for the surrogate (one line).

    python examples/network_swap.py            # 40 E + 10 PV cells, 300 ms, twice (~2 min on 2 cores)
    python examples/network_swap.py --quick    # 8 E + 2 PV, 60 ms
    mpiexec -n 2 python examples/network_swap.py --quick --surrogate-only --spikes-out s2.json   # 2 MPI ranks
    python examples/network_swap.py --hybrid   # swap in HybridCells (the model's soma and axon + fitted dendrites)

The same network runs twice with identical background input (seeded NetStims): first with
the PV population made of detailed family models (237 compartments each, imported into
NetPyNE from the HoC template), then with ``noble_neuron.integrations.netpyne.swap_population`` putting
surrogate cells in their place. E cells are one-compartment somas with the family's channels. Writes
examples/network_swap.png: rasters, population rates and per-cell PV rates side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def build(n_e: int, n_pv: int, pv_models: list[str]):
    from netpyne import specs

    from noble_neuron.detailed.mechanisms import load_mechanisms
    from noble_neuron.detailed.pv_family import netpyne_cells

    load_mechanisms()  # before importCellParams: NetPyNE lists mechanism variables before it builds the cell
    net = specs.NetParams()
    # E: a one-compartment regular-spiking-like soma from the family's channels (valid at 34 °C,
    # where textbook HH barely fires)
    net.cellParams["E_soma"] = {"secs": {"soma": {
        "geom": {"L": 20.0, "diam": 20.0, "Ra": 100.0, "cm": 1.0},
        "mechs": {"pas": {"g": 5e-5, "e": -70.0}, "nn_NaT": {"gbar": 0.12, "vshiftm": -8.0},
                  "nn_Kv31": {"gbar": 0.3}, "nn_KP": {"gbar": 0.004}},
        "ions": {"na": {"e": 53.0}, "k": {"e": -107.0}}}}}
    for m in sorted(set(pv_models)):
        net.importCellParams(f"PV_{m}", fileName=netpyne_cells.__file__, cellName="pv_detailed",
                             cellArgs={"model_id": m})
    net.popParams["E"] = {"cellType": "E_soma", "numCells": n_e}
    net.popParams["PV"] = {"cellType": f"PV_{pv_models[0]}", "numCells": n_pv}
    net.popParams["bg_E"] = {"cellModel": "NetStim", "numCells": n_e, "rate": 900, "noise": 1.0, "seed": 1}
    net.popParams["bg_PV"] = {"cellModel": "NetStim", "numCells": n_pv, "rate": 1200, "noise": 1.0, "seed": 2}
    net.synMechParams["AMPA"] = {"mod": "ExpSyn", "tau": 2.0, "e": 0.0}
    net.synMechParams["GABA"] = {"mod": "Exp2Syn", "tau1": 0.5, "tau2": 6.0, "e": -75.0}
    one_to_one = lambda n: [[i, i] for i in range(n)]  # noqa: E731
    net.connParams["bg->E"] = {"preConds": {"pop": "bg_E"}, "postConds": {"pop": "E"}, "connList": one_to_one(n_e),
                               "synMech": "AMPA", "weight": 0.00045, "delay": 1.5, "sec": "soma"}
    net.connParams["bg->PV"] = {"preConds": {"pop": "bg_PV"}, "postConds": {"pop": "PV"},
                                "connList": one_to_one(n_pv), "synMech": "AMPA", "weight": 0.0007, "delay": 1.5,
                                "sec": "soma"}
    net.connParams["E->PV"] = {"preConds": {"pop": "E"}, "postConds": {"pop": "PV"}, "probability": 0.3,
                               "synMech": "AMPA", "weight": 0.0008, "delay": 1.5, "sec": "soma"}
    net.connParams["PV->E"] = {"preConds": {"pop": "PV"}, "postConds": {"pop": "E"}, "probability": 0.4,
                               "synMech": "GABA", "weight": 0.002, "delay": 1.5, "sec": "soma"}
    return net


def run(net, tstop: float) -> tuple[dict, float]:
    """Create and simulate; on rank 0 returns spikes, gids and PV soma traces (gathered from all ranks)."""
    from netpyne import sim, specs

    cfg = specs.SimConfig()
    cfg.duration, cfg.dt, cfg.seeds = tstop, 0.025, {"conn": 1, "stim": 1, "loc": 1}
    cfg.hParams = {"celsius": 34.0, "v_init": -70.0}
    cfg.verbose = cfg.printRunTime = cfg.printPopAvgRates = False
    cfg.recordCells = ["PV"]
    cfg.recordTraces = {"V_soma": {"sec": "soma", "loc": 0.5, "var": "v"}}
    cfg.recordStep = 0.1
    cfg.analysis = {}
    start = time.perf_counter()
    sim.create(netParams=net, simConfig=cfg, output=False)
    sim.simulate()
    wall = time.perf_counter() - start
    out = {}
    if sim.rank == 0:
        gids = {pop: list(sim.net.allPops[pop]["cellGids"]) for pop in ("E", "PV")}
        out = {"t": np.array(sim.allSimData["spkt"]), "gid": np.array(sim.allSimData["spkid"]), "gids": gids,
               "pv_v": {k: np.array(v).tolist() for k, v in sim.allSimData["V_soma"].items()}}
    sim.clearAll()
    sim.fih.clear()
    return out, wall


def rates(spikes: dict, pop: str, tstop: float) -> np.ndarray:
    return np.array([1000.0 * np.sum(spikes["gid"] == g) / tstop for g in spikes["gids"][pop]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--checkpoint", default=None, help="streaming network checkpoint (default: shipped)")
    ap.add_argument("--out", default=str(HERE / "network_swap.png"), help="PNG to write")
    ap.add_argument("--surrogate-only", action="store_true", help="run only the surrogate network (no PNG)")
    ap.add_argument("--spikes-out", default=None, help="JSON with the surrogate run's spikes and PV soma traces")
    ap.add_argument("--hybrid", action="store_true", help="swap in HybridCells instead of streaming surrogates")
    args = ap.parse_args()
    n_e, n_pv, tstop = (8, 2, 60.0) if args.quick else (40, 10, 300.0)

    from neuron import h

    if int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "1"))) > 1:
        h.nrnmpi_init()  # launched by mpiexec: NEURON's MPI before NetPyNE makes its ParallelContext
    from noble_neuron.integrations import netpyne as nn_netpyne
    model = "hof_000"
    if not args.surrogate_only:
        detailed, wall_d = run(build(n_e, n_pv, [model]), tstop)
    net = build(n_e, n_pv, [model])
    if args.hybrid:
        nn_netpyne.swap_population(net, "PV", hybrid=True, model_id=model)  # the one-line swap
    else:
        nn_netpyne.swap_population(net, "PV", checkpoint=args.checkpoint, model_id=model)  # the one-line swap
    surrogate, wall_s = run(net, tstop)
    rank0 = h.ParallelContext().id() == 0
    if args.spikes_out and rank0:
        order = np.lexsort((surrogate["t"], surrogate["gid"]))
        Path(args.spikes_out).write_text(json.dumps({
            "spikes": [[int(g), float(t)] for g, t in zip(surrogate["gid"][order], surrogate["t"][order])],
            "pv_v": surrogate["pv_v"], "ranks": int(h.ParallelContext().nhost())}))
    if args.surrogate_only:
        if rank0:
            print(f"surrogate PV: {len(surrogate['t'])} spikes in {wall_s:.1f} s on "
                  f"{int(h.ParallelContext().nhost())} rank(s)")
        if h.ParallelContext().nhost() > 1:
            h.ParallelContext().barrier()
            h.ParallelContext().done()
            h.quit()  # MPI_Finalize on every rank, or mpiexec reports an improper exit
        return

    for name, sp, wall in (("detailed PV", detailed, wall_d), ("surrogate PV", surrogate, wall_s)):
        print(f"{name:13s}: E {rates(sp, 'E', tstop).mean():6.1f} Hz, PV {rates(sp, 'PV', tstop).mean():6.1f} Hz, "
              f"wall {wall:6.1f} s")

    from noble_neuron.evaluation.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 6), gridspec_kw={"height_ratios": [2, 1]})
    for col, (title, sp) in enumerate((("detailed PV", detailed), ("surrogate PV", surrogate))):
        ax = axes[0, col]
        for pop, color in (("E", "tab:red"), ("PV", "tab:blue")):
            sel = np.isin(sp["gid"], sp["gids"][pop])
            ax.plot(sp["t"][sel], sp["gid"][sel], "|", color=color, ms=3, label=pop)
        ax.set(title=title, xlabel="time (ms)", ylabel="cell gid", xlim=(0, tstop))
        ax.legend(loc="upper right", frameon=False)
    bins = np.arange(0, tstop + 5, 5.0)
    for pop, color in (("E", "tab:red"), ("PV", "tab:blue")):
        for sp, style in ((detailed, "-"), (surrogate, "--")):
            sel = np.isin(sp["gid"], sp["gids"][pop])
            hist = np.histogram(sp["t"][sel], bins)[0] / (len(sp["gids"][pop]) * 5e-3)
            axes[1, 0].plot(bins[:-1], hist, style, color=color,
                            label=f"{pop} {'detailed' if sp is detailed else 'surrogate'}")
    axes[1, 0].set(xlabel="time (ms)", ylabel="population rate (Hz)")
    axes[1, 0].legend(frameon=False, fontsize=7)
    axes[1, 1].scatter(rates(detailed, "PV", tstop), rates(surrogate, "PV", tstop), color="tab:blue")
    top = max(1.0, rates(detailed, "PV", tstop).max(), rates(surrogate, "PV", tstop).max())
    axes[1, 1].plot([0, top], [0, top], "k:")
    axes[1, 1].set(xlabel="PV rate, detailed (Hz)", ylabel="PV rate, surrogate (Hz)")
    fig.tight_layout()
    out = Path(args.out)
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
