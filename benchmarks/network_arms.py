"""Network cells side by side, each arm in its own NEURON run: detailed, hybrid, streaming surrogate, baselines.

    python benchmarks/network_arms.py                          # 20 cells, 1 s, the standard drive (~3 min, 2 cores)
    python benchmarks/network_arms.py --drive strong           # 3000 Hz excitation
    python benchmarks/network_arms.py --drive varied           # kinetics and weights in no training trace
    python benchmarks/network_arms.py --cells 100 --tstop 300  # more cells
    python benchmarks/network_arms.py --quick                  # smoke test: 2 cells, 60 ms, no JSON unless --out

The same network (cells of the shipped family, each fed by its own seeded Poisson sources through synapses on
the soma: `benchmarks/network.py`'s drives) is built and run once per arm, each in a fresh Python process, fixed
step 0.025 ms; the wall time of `finitialize` + `continuerun` is the arm's cost, the soma voltages its answer.
Arms: ``detailed`` (237 segments per cell), ``hybrid`` (`HybridCell`: the model's own soma and axon, 7 segments,
dendrites as a fitted linear load), ``surrogate`` (`SurrogateCell(network="streaming")`, the streaming checkpoint),
``adex`` (the fitted AdEx), ``gif`` (the fitted GIF, Pozzorini et al. 2015), ``reduce`` (neuron_reduce, Amsalem 2020) and ``reduce3`` (the same coarsened to ≤ 3
segments per section). Each arm is scored against the detailed arm: rates, per-cell rate correlation, Γ (±2 ms),
PSTH explained variance, subthreshold RMSE, firing mismatches; speed = detailed wall time / arm wall time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from network import DELAY_MS, STEP_AMPS_NA, W_EXC_US, W_INH_US, agreement

RESULTS = Path(__file__).parent / "results"
ARMS = ("detailed", "hybrid", "hybrid1", "surrogate", "adex", "gif", "reduce", "reduce3")
STRONG_EXC_HZ = 3000.0


def build_cells(arm: str, ids: list[str]) -> list:
    """The arm's cells, one per model id (NEURON objects with a `soma`)."""
    if arm == "detailed":
        from noble_neuron.detailed.pv_family import get_model

        return [get_model(m).instantiate() for m in ids]
    if arm == "hybrid":
        from noble_neuron.neuron.hybrid_cell import HybridCell

        return [HybridCell(m) for m in ids]
    if arm == "hybrid1":
        from noble_neuron.neuron.hybrid_cell import HybridCell

        return [HybridCell(m, max_nseg=1) for m in ids]
    if arm == "surrogate":
        from noble_neuron.neuron.cell import SurrogateCell

        return [SurrogateCell(m, network="streaming") for m in ids]
    if arm == "adex":
        from noble_neuron.neuron.adex_cell import AdExCell

        return [AdExCell(m) for m in ids]
    if arm == "gif":
        from noble_neuron.neuron.gif_cell import GIFCell

        return [GIFCell(m) for m in ids]
    if arm in ("reduce", "reduce3"):
        from noble_neuron.baselines.neuron_reduce import ReducedCell

        return [ReducedCell(m, max_segments_per_section=3 if arm == "reduce3" else None) for m in ids]
    raise ValueError(f"unknown arm {arm!r}; choose from {ARMS}")


def run_arm_process(arm: str, cmd: list[str]) -> str | None:
    """Run one arm's command in a fresh process; None when it succeeded, else the error line it died with."""
    print(f"running arm {arm} ...", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode == 0:
        return None
    print(f"arm {arm} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
    lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip() and "graphics" not in ln and "DISPLAY" not in ln]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errors or lines or [f"exit status {done.returncode}"])[-1].strip()


def run_arm(args) -> None:
    """Build one arm's network, run it, save its traces and wall time (called in a fresh process)."""
    from neuron import h

    from noble_neuron.detailed.pv_family import load_family
    from noble_neuron.stimuli.synaptic_drive import VARIED_DELAY_MS, VARIED_DRIVE, poisson_sources_drive, poisson_synaptic_drive

    h.load_file("stdrun.hoc")
    family = [m.model_id for m in load_family("train")] + [m.model_id for m in load_family("unseen")]
    ids = [family[i % len(family)] for i in range(args.cells)]
    cells = build_cells(args.run_arm, ids)
    keep = []
    for i, cell in enumerate(cells):
        if args.drive == "steps":
            stim = h.IClamp(cell.soma(0.5))
            stim.delay, stim.dur, stim.amp = 15.0, args.tstop - 115.0, STEP_AMPS_NA[i % len(STEP_AMPS_NA)]
            keep.append(stim)
        elif args.drive == "varied":
            keep += poisson_sources_drive(h, [cell], i, VARIED_DRIVE, VARIED_DELAY_MS)
        else:
            keep += poisson_synaptic_drive(h, [cell], seed=i, rate_exc_Hz=STRONG_EXC_HZ if args.drive == "strong"
                                           else 1200.0, rate_inh_Hz=400.0, w_exc_uS=W_EXC_US, w_inh_uS=W_INH_US,
                                           delay_ms=DELAY_MS)
    recs = [h.Vector().record(c.soma(0.5)._ref_v) for c in cells]
    h.cvode_active(0)
    h.dt = 0.025
    start = time.perf_counter()
    h.finitialize(-70)
    h.continuerun(args.tstop)
    wall = time.perf_counter() - start
    split = {}
    if args.run_arm == "surrogate":
        from noble_neuron.neuron.engine import engine

        group = engine().network_groups[0]
        split = {"wall_s_model": group.predict_s, "wall_s_engine": group.engine_s}
    segments = sum(sec.nseg for sec in h.allsec()) / len(cells)  # per cell
    np.savez(args.traces_out, v=np.array([np.array(r) for r in recs]), wall_s=wall, ids=np.array(ids),
             segments=segments, split=json.dumps(split))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--tstop", type=float, default=1000.0, help="ms")
    ap.add_argument("--drive", choices=("standard", "strong", "varied", "steps"), default="standard")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {','.join(ARMS)} (detailed is always run)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--run-arm", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--traces-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.cells, args.tstop = 2, 60.0
    if args.drive == "steps" and not args.quick:
        args.tstop = max(args.tstop, 515.0)
    if args.run_arm:
        return run_arm(args)
    arms = ["detailed"] + [a for a in args.arms.split(",") if a and a != "detailed"]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"network_arms.py: unknown arms {unknown}; choose from {','.join(ARMS)}")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in arms:
            path = Path(tmp) / f"{arm}.npz"
            cmd = [sys.executable, __file__, "--run-arm", arm, "--traces-out", str(path), "--cells", str(args.cells),
                   "--tstop", str(args.tstop), "--drive", args.drive]
            error = run_arm_process(arm, cmd)
            if error:
                runs[arm] = {"error": error}
                continue
            with np.load(path) as z:
                runs[arm] = {"v": z["v"], "wall_s": float(z["wall_s"]), "ids": [str(x) for x in z["ids"]],
                             "segments_per_cell": float(z["segments"]), "split": json.loads(str(z["split"]))}
    if "v" not in runs["detailed"]:
        raise SystemExit(f"the detailed arm failed: {runs['detailed']['error']}")
    from noble_neuron.evaluation.machine import machine_info

    det = runs["detailed"]
    t = np.arange(det["v"].shape[1]) * 0.025
    result = {"machine": machine_info(), "command": "python benchmarks/network_arms.py " + " ".join(sys.argv[1:]),
              "n_cells": args.cells, "tstop_ms": args.tstop, "neuron_dt_ms": 0.025, "drive": args.drive,
              "model_ids": det["ids"], "detailed": {"wall_s": det["wall_s"], "segments_per_cell": det["segments_per_cell"],
                                                   "rate_Hz_mean": None}, "arms": {}}
    for arm, run in runs.items():
        if arm == "detailed":
            continue
        if "v" not in run:
            result["arms"][arm] = {"error": run["error"]}
            continue
        score = agreement(t, list(det["v"]), list(run["v"]), args.tstop)
        result["detailed"]["rate_Hz_mean"] = score["rate_Hz_detailed_mean"]
        result["arms"][arm] = {"wall_s": run["wall_s"], "speedup_vs_detailed": det["wall_s"] / run["wall_s"],
                               "segments_per_cell": run["segments_per_cell"], **run["split"],
                               **{k: v for k, v in score.items() if k not in ("per_cell", "rate_Hz_detailed_mean")},
                               "per_cell_gamma": [c["gamma"] for c in score["per_cell"]],
                               "per_cell_rate_Hz": [c["rate_Hz"] for c in score["per_cell"]]}
    print(f"{'arm':10s} {'rate Hz':>8s} {'Γ±2ms':>6s} {'RMSE mV':>8s} {'EV':>6s} {'speed':>7s}")
    print(f"{'detailed':10s} {result['detailed']['rate_Hz_mean'] or 0:8.1f} {'':6s} {'':8s} {'':6s} "
          f"{det['wall_s']:6.1f}s")
    for arm, r in result["arms"].items():
        if "error" in r:
            print(f"{arm:10s} failed: {r['error']}")
            continue
        print(f"{arm:10s} {r['rate_Hz_mean']:8.1f} {r['gamma_2ms_median']:6.2f} {r['subthreshold_rmse_mV_median']:8.2f} "
              f"{r['psth_ev_10ms_median']:6.2f} {r['speedup_vs_detailed']:6.1f}×")
    suffix = "" if args.drive == "standard" else f"_{args.drive}"
    out = args.out or (None if args.quick else RESULTS / f"network_arms{suffix}{'' if args.cells == 20 else f'_{args.cells}cells'}.json")
    if out:
        Path(out).write_text(json.dumps(result, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
