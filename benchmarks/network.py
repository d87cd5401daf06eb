"""Network mode vs detailed twins: identical synaptic drive, side by side in one run.

    python benchmarks/network.py               # 20 PV cells of the family, 1 s (~1 min on 2 cores)
    python benchmarks/network.py --cells 100   # more cells
    python benchmarks/network.py --quick       # smoke test: 2 cells, 60 ms, no JSON unless --out

Each PV cell receives the same input as its twin: excitatory (ExpSyn, tau 2 ms, e 0 mV) and
inhibitory (Exp2Syn, 0.5/6 ms, e -75 mV) conductance synapses on the soma, fed through NetCons
(delay 1.5 ms) by Poisson NetStims with fixed seeds. The detailed twins are the shipped family
models (237 segments each); the surrogate cells are `SurrogateCell(model_id, network="streaming")`
with the shipped network checkpoint. Both populations run in ONE NEURON simulation, fixed step
dt 0.025 ms, so the detailed solve time is the whole run minus the surrogate engine time.

A third population, the reduced-model baseline, gets the same input: each model's fitted AdEx
(`noble_neuron.neuron.adex_cell.AdExCell`, fits in noble_neuron/baselines/pv_family_adex.json from
`noble-neuron fit-adex`), one compartment each (their cost counts in the detailed estimate: < 1 %).

Reported (benchmarks/results/network.json): wall time detailed vs surrogate (engine + FNO), per-cell
rates, population rate difference, per-cell rate correlation, spike-time coincidence Gamma
(+-2 ms, Kistler et al. 1997), PSTH explained variance (sigma 10 ms, median over cells),
subthreshold RMSE (spikes cut out) and firing mismatches; the same figures for the AdEx baseline
under "adex_baseline".
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from noble_neuron.evaluation.machine import machine_info
from noble_neuron.features.spike_metrics import coincidence_gamma, psth_explained_variance, subthreshold_rmse_mV
from noble_neuron.features.spikes import spike_times_at

RESULTS = Path(__file__).parent / "results"
W_EXC_US, W_INH_US, DELAY_MS = 0.0008, 0.002, 1.5  # synaptic weights (peak conductance) and NetCon delay
STEP_AMPS_NA = (0.15, 0.25, 0.35)  # --drive steps: above every family model's rheobase, up to ~150 Hz


def spike_times(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Spike times (ms) of a recorded trace: the package's one detector (crossings of SPIKE_THRESHOLD_MV)."""
    return spike_times_at(t, v)


def agreement(t: np.ndarray, traces_d: list[np.ndarray], traces_x: list[np.ndarray], tstop: float) -> dict:
    """Rates, Γ (±2 ms), PSTH explained variance (σ 10 ms, per cell), subthreshold RMSE of cells x vs detailed."""
    gammas, rates_d, rates_x, rmses, mismatches, all_d, all_x = [], [], [], [], 0, [], []
    for vd, vx in zip(traces_d, traces_x):
        sd, sx = spike_times(t, vd), spike_times(t, vx)
        all_d.append(sd)
        all_x.append(sx)
        rates_d.append(1000.0 * sd.size / tstop)
        rates_x.append(1000.0 * sx.size / tstop)
        mismatches += int((sd.size > 0) != (sx.size > 0))
        gammas.append(coincidence_gamma(sd, sx, 2.0, tstop))
        rmses.append(subthreshold_rmse_mV(t, vd, vx, [sd, sx]))
    rates_d, rates_x = np.array(rates_d), np.array(rates_x)
    n = rates_d.size
    return {
        "rate_Hz_detailed_mean": float(rates_d.mean()), "rate_Hz_mean": float(rates_x.mean()),
        "population_rate_rel_diff": float(abs(rates_x.mean() - rates_d.mean()) / max(rates_d.mean(), 1e-9)),
        "per_cell_rate_corr": (float(np.corrcoef(rates_d, rates_x)[0, 1])
                               if n > 2 and rates_d.std() > 0 and rates_x.std() > 0 else None),
        "gamma_2ms_median": float(np.median(gammas)), "gamma_2ms_mean": float(np.mean(gammas)),
        # per cell (each cell's own input; a population PSTH of independently driven cells is flat noise)
        "psth_ev_10ms_median": float(np.nanmedian([psth_explained_variance(a, b, tstop)
                                                   for a, b in zip(all_d, all_x)] or [np.nan])),
        "subthreshold_rmse_mV_median": float(np.nanmedian(rmses)),
        "firing_mismatches": mismatches,
        "per_cell": [{"rate_detailed_Hz": float(a), "rate_Hz": float(b), "gamma": float(g)}
                     for a, b, g in zip(rates_d, rates_x, gammas)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--tstop", type=float, default=1000.0, help="ms (1 s: ~8 spikes per cell at the default drive, enough for Γ)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--checkpoint", default=None, help="streaming network checkpoint (default: the shipped one)")
    ap.add_argument("--record", action="store_true", help="store the agreement figures in the checkpoint's "
                    "metrics['closed_loop'] (what SurrogateCell reads to warn about unvalidated checkpoints)")
    ap.add_argument("--rate-exc", type=float, default=1200.0, help="Hz, total excitatory input per cell")
    ap.add_argument("--rate-inh", type=float, default=400.0, help="Hz, total inhibitory input per cell")
    ap.add_argument("--step-ms", type=float, default=400.0, help="--drive steps: step duration (ms; from 15 ms, "
                    "tstop = duration + 115 ms as NOBLE's Long Square)")
    ap.add_argument("--drive", choices=("standard", "varied", "steps"), default="standard",
                    help="varied: noble_neuron.stimuli.synaptic_drive.VARIED_DRIVE (3 exc sources of other kinetics, "
                         "inhibition 1/10 ms at -85 mV, delay 3 ms) instead of the exc/inh pair; steps: Long Square "
                         "current steps (STEP_AMPS_NA, cycled over the cells) and no synapses")
    ap.add_argument("--no-adex", action="store_true", help="leave out the AdEx baseline (fitted per model: "
                    "noble_neuron/baselines/pv_family_adex.json) that otherwise runs as a third population")
    args = ap.parse_args()
    n, tstop = (2, 60.0) if args.quick else (args.cells, args.tstop)
    if args.drive == "steps" and not args.quick:
        tstop = args.step_ms + 115.0

    from neuron import h

    from noble_neuron.neuron.adex_cell import AdExCell
    from noble_neuron.neuron.engine import engine
    from noble_neuron.detailed.pv_family import get_model, load_family
    from noble_neuron.neuron.cell import SurrogateCell
    from noble_neuron.stimuli.synaptic_drive import (VARIED_DELAY_MS, VARIED_DRIVE, poisson_sources_drive,
                                             poisson_synaptic_drive)

    h.load_file("stdrun.hoc")
    family = [m.model_id for m in load_family("train")] + [m.model_id for m in load_family("unseen")]
    ids = [family[i % len(family)] for i in range(n)]
    detailed = [get_model(m).instantiate() for m in ids]
    surrogate = [SurrogateCell(m, network="streaming", checkpoint=args.checkpoint) for m in ids]
    adex = [] if args.no_adex else [AdExCell(m) for m in ids]
    keep, rec = [], []
    for i, (d, s) in enumerate(zip(detailed, surrogate)):
        twins = [d, s] + ([adex[i]] if adex else [])
        if args.drive == "steps":
            for cell in twins:
                stim = h.IClamp(cell.soma(0.5))
                stim.delay, stim.dur, stim.amp = 15.0, tstop - 115.0, STEP_AMPS_NA[i % len(STEP_AMPS_NA)]
                keep.append(stim)
        elif args.drive == "varied":
            keep += poisson_sources_drive(h, twins, i, VARIED_DRIVE, VARIED_DELAY_MS)
        else:
            keep += poisson_synaptic_drive(h, twins, seed=i, rate_exc_Hz=args.rate_exc, rate_inh_Hz=args.rate_inh,
                                           w_exc_uS=W_EXC_US, w_inh_uS=W_INH_US, delay_ms=DELAY_MS)
        rec.append([h.Vector().record(c.soma(0.5)._ref_v) for c in twins])
    t_rec = h.Vector().record(h._ref_t)
    h.cvode_active(0)
    h.dt = 0.025
    start = time.perf_counter()
    h.finitialize(-70)
    h.continuerun(tstop)
    wall = time.perf_counter() - start
    group = engine().network_groups[0]
    t = np.array(t_rec)
    v_d, v_s = [np.array(r[0]) for r in rec], [np.array(r[1]) for r in rec]
    surr = agreement(t, v_d, v_s, tstop)
    surrogate_s = group.predict_s + group.engine_s
    result = {
        "machine": machine_info(), "n_cells": n, "tstop_ms": tstop, "neuron_dt_ms": 0.025,
        "input": ({"drive": "varied", "sources": [list(x) for x in VARIED_DRIVE], "delay_ms": VARIED_DELAY_MS}
                  if args.drive == "varied" else
                  {"drive": "steps", "amps_nA": list(STEP_AMPS_NA), "delay_ms": 15.0, "dur_ms": tstop - 115.0}
                  if args.drive == "steps" else
                  {"exc_Hz": args.rate_exc, "exc_weight_uS": W_EXC_US, "inh_Hz": args.rate_inh,
                   "inh_weight_uS": W_INH_US, "delay_ms": DELAY_MS}),
        "checkpoint": str(Path(args.checkpoint).resolve().relative_to(Path.cwd().resolve()))
        if args.checkpoint and Path(args.checkpoint).resolve().is_relative_to(Path.cwd().resolve())
        else (args.checkpoint or "noble_neuron/checkpoints/pv_fno_network.pt"),
        "epoch_ms": group.epoch_ms, "fno_calls": group.predict_calls,
        "wall_s_total": wall, "wall_s_surrogate_engine": surrogate_s, "wall_s_fno": group.predict_s,
        "wall_s_detailed_estimate": wall - surrogate_s,
        "speedup_end_to_end": (wall - surrogate_s) / surrogate_s,
        "rate_Hz_surrogate_mean": surr.pop("rate_Hz_mean"),
        **{k: v for k, v in surr.items() if k != "per_cell"},
        "per_cell": [{"model_id": m, "rate_detailed_Hz": c["rate_detailed_Hz"], "rate_surrogate_Hz": c["rate_Hz"],
                      "gamma": c["gamma"]} for m, c in zip(ids, surr["per_cell"])],
    }
    if adex:
        base = agreement(t, v_d, [np.array(r[2]) for r in rec], tstop)
        result["adex_baseline"] = {"fits": "noble_neuron/baselines/pv_family_adex.json",
                                   "rate_Hz_adex_mean": base.pop("rate_Hz_mean"),
                                   **{k: v for k, v in base.items() if k not in ("per_cell", "rate_Hz_detailed_mean")},
                                   "per_cell_rate_Hz": [c["rate_Hz"] for c in base["per_cell"]]}
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "per_cell")}, indent=1,
                     default=lambda x: None))
    if args.record:
        from noble_neuron.surrogate.checkpoint import SHIPPED_NETWORK_CHECKPOINT, load_surrogate, save_surrogate

        path = Path(args.checkpoint or SHIPPED_NETWORK_CHECKPOINT)
        s = load_surrogate(path, device="cpu")
        key = "closed_loop" if args.drive == "standard" else f"closed_loop_{args.drive}_drive"
        s.metrics[key] = {k: result[k] for k in (
            "n_cells", "tstop_ms", "rate_Hz_detailed_mean", "rate_Hz_surrogate_mean", "population_rate_rel_diff",
            "per_cell_rate_corr", "gamma_2ms_median", "psth_ev_10ms_median", "subthreshold_rmse_mV_median", "firing_mismatches")}
        s.metrics[key]["measured_by"] = "benchmarks/network.py" + ("" if args.drive == "standard"
                                                                   else f" --drive {args.drive}")
        if "adex_baseline" in result:
            s.metrics[key]["adex_baseline"] = {k: result["adex_baseline"][k] for k in (
                "rate_Hz_adex_mean", "per_cell_rate_corr", "gamma_2ms_median", "psth_ev_10ms_median",
                "subthreshold_rmse_mV_median")}
        save_surrogate(s, path)
        print(f"recorded closed-loop metrics in {path}")
    out = args.out or (None if args.quick else RESULTS / "network.json")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
