"""Quickstart — the detailed PV model and its FNO surrogate in the same NEURON script.

    python examples/quickstart.py                 # ~30 s on 2 CPU cores; writes quickstart.png
    python examples/quickstart.py --quick         # 3 FI amplitudes (smoke test)

The two cells are interchangeable: the only difference between the runs is the line that
makes the cell (`make_detailed` vs `make_surrogate`). Everything else — IClamp on
``cell.soma(0.5)``, recording ``_ref_v``, NetCon spike detection, ``finitialize`` +
``continuerun`` — is ordinary NEURON. The surrogate FI curve is one run of N cells (one
batched FNO call); the detailed one is N separate 515 ms multicompartment solves.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from neuron import h

from noble_neuron import SurrogateCell
from noble_neuron.detailed.pv_family import get_model
from noble_neuron.simulation.simulate import downsample_trace

MODEL = "hof_017"          # a training model of the shipped family
STEP_NA = 0.30             # the trace comparison
DELAY_MS, DUR_MS, TSTOP_MS = 15.0, 400.0, 515.0
DT_MS = 0.02               # NEURON dt (the detailed training data used 0.02 ms)
ZOOM_MS = (200.0, 230.0)   # the zoomed panel: action-potential shapes side by side
SUBTHRESHOLD_NA = (-0.05, 0.04)  # the subthreshold panel: a hyperpolarising and a just-subthreshold step (nA)


def make_detailed(model_id: str):
    return get_model(model_id).instantiate()


CHECKPOINT = None  # None: the shipped checkpoint (--checkpoint: e.g. one from noble-neuron build-surrogate)


def make_surrogate(model_id: str):
    return SurrogateCell(model_id, checkpoint=CHECKPOINT)


def attach(cell, amp_nA: float):
    """IClamp, voltage recording and a spike detector on cell.soma — identical for both cell kinds."""
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = DELAY_MS, DUR_MS, amp_nA
    v = h.Vector().record(cell.soma(0.5)._ref_v, DT_MS)
    nc = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)
    nc.threshold = 0.0
    spikes = h.Vector()
    nc.record(spikes)
    return {"cell": cell, "stim": stim, "v": v, "nc": nc, "spikes": spikes}


def run() -> float:
    """finitialize + continuerun over the Long Square window; returns wall seconds."""
    h.dt = DT_MS
    h.steps_per_ms = 1.0 / DT_MS
    h.tstop = TSTOP_MS
    start = time.perf_counter()
    h.finitialize(-70.0)
    h.continuerun(TSTOP_MS)
    return time.perf_counter() - start


def rate_Hz(rig) -> float:
    s = rig["spikes"].as_numpy()
    return float(np.sum((s >= DELAY_MS) & (s < DELAY_MS + DUR_MS)) / (DUR_MS / 1e3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--quick", action="store_true", help="3 FI amplitudes instead of 8")
    ap.add_argument("--out", default=str(Path(__file__).with_name("quickstart.png")))
    ap.add_argument("--checkpoint", default=None, help="surrogate checkpoint (default: the shipped one)")
    ap.add_argument("--json", default=None, help="also write the figures here (benchmarks/results/quickstart.json "
                    "holds the README's)")
    args = ap.parse_args()
    global CHECKPOINT
    CHECKPOINT = args.checkpoint
    h.load_file("stdrun.hoc")
    fi_amps = np.array([0.05, 0.2, 0.35]) if args.quick else np.linspace(0.0, 0.35, 8)

    # --- one step, both cells (the only different line is the constructor) ---
    detailed = attach(make_detailed(args.model), STEP_NA)
    wall_detailed = run()
    v_detailed = detailed["v"].as_numpy().copy()
    n_detailed = detailed["spikes"].size()
    del detailed

    surrogate = attach(make_surrogate(args.model), STEP_NA)
    surrogate["stim"].amp = STEP_NA + 1e-9
    wall_surrogate_first = run()  # the first run in a process: one-time set-up included
    surrogate["stim"].amp = STEP_NA  # a new input: a fresh prediction (its own step train, no network pass)
    wall_surrogate_predict = run()
    wall_surrogate = run()  # unchanged inputs: cached prediction, the NEURON stepping cost alone
    cell = surrogate["cell"]
    grid = np.arange(cell.surrogate.n_samples) * cell.dt_ms
    v_pred = cell.prediction_mV
    v_true = downsample_trace(v_detailed[: int(round(TSTOP_MS / DT_MS))], 3, grid.size)  # as the training data
    rel_l2 = float(np.linalg.norm(v_pred - v_true) / np.linalg.norm(v_true))
    rmse_recorded = float(np.sqrt(np.mean((surrogate["v"].as_numpy()[: grid.size * 3: 3] - v_pred) ** 2)))
    n_surrogate = surrogate["spikes"].size()
    del surrogate

    # --- below threshold: a hyperpolarising and a just-subthreshold step, both cells ---
    sub_detailed = []
    for a in SUBTHRESHOLD_NA:
        rig = attach(make_detailed(args.model), a)
        run()
        sub_detailed.append(downsample_trace(rig["v"].as_numpy()[: int(round(TSTOP_MS / DT_MS))], 3, grid.size))
        del rig
    rigs = [attach(make_surrogate(args.model), a) for a in SUBTHRESHOLD_NA]
    run()
    sub_surrogate = [r["cell"].prediction_mV.copy() for r in rigs]
    sub_rmse = [float(np.sqrt(np.mean((p - d) ** 2))) for p, d in zip(sub_surrogate, sub_detailed)]
    del rigs

    # --- FI curves: N detailed solves vs one run of N surrogate cells ---
    start = time.perf_counter()
    fi_detailed = []
    for a in fi_amps:
        rig = attach(make_detailed(args.model), float(a))
        run()
        fi_detailed.append(rate_Hz(rig))
        del rig
    wall_fi_detailed = time.perf_counter() - start
    rigs = [attach(make_surrogate(args.model), float(a)) for a in fi_amps]
    wall_fi_surrogate = run()
    fi_surrogate = [rate_Hz(r) for r in rigs]
    del rigs

    print(f"model {args.model}, {STEP_NA} nA step, {TSTOP_MS:g} ms:")
    print(f"  spikes: detailed {n_detailed}, surrogate {n_surrogate}")
    print(f"  relative L2 error of the surrogate trace: {100 * rel_l2:.1f}%  "
          f"(recorded soma v vs predict(): RMSE {rmse_recorded:.4f} mV)")
    print(f"  wall time per run: detailed {wall_detailed:.2f} s, surrogate {wall_surrogate_predict:.3f} s with a "
          f"fresh prediction ({wall_surrogate:.3f} s cached, {wall_surrogate_first:.3f} s for the first run of the "
          f"process) -> {wall_detailed / wall_surrogate_predict:.0f}x")
    print(f"  FI curve ({fi_amps.size} amplitudes): detailed {wall_fi_detailed:.1f} s, surrogate "
          f"{wall_fi_surrogate:.2f} s (one batched run)")
    print("  below threshold, RMSE surrogate vs detailed:",
          ", ".join(f"{a * 1e3:g} pA {e:.2f} mV" for a, e in zip(SUBTHRESHOLD_NA, sub_rmse)))
    print("  rates (Hz) detailed :", np.round(fi_detailed, 1).tolist())
    print("  rates (Hz) surrogate:", np.round(fi_surrogate, 1).tolist())

    if args.json:
        import json

        from noble_neuron.evaluation.machine import machine_info

        Path(args.json).write_text(json.dumps({
            "model": args.model, "step_nA": STEP_NA, "tstop_ms": TSTOP_MS, "spikes_detailed": int(n_detailed),
            "spikes_surrogate": int(n_surrogate), "rel_l2": rel_l2, "wall_s_detailed": wall_detailed,
            "wall_s_surrogate_fresh": wall_surrogate_predict, "wall_s_surrogate_first_run": wall_surrogate_first,
            "fi_amps_nA": fi_amps.tolist(),
            "fi_rates_Hz_detailed": [float(x) for x in fi_detailed],
            "fi_rates_Hz_surrogate": [float(x) for x in fi_surrogate],
            "subthreshold_steps_nA": list(SUBTHRESHOLD_NA), "subthreshold_rmse_mV": sub_rmse,
            "machine": machine_info()}, indent=1) + "\n")

    from noble_neuron.evaluation.plots import pyplot

    plt = pyplot()
    fig = plt.figure(figsize=(9, 10))
    grid_spec = fig.add_gridspec(3, 2, height_ratios=[1.2, 1, 1], width_ratios=[2.2, 1])
    ax1, zoom = fig.add_subplot(grid_spec[0, :]), fig.add_subplot(grid_spec[1, 1])
    ax2, sub = fig.add_subplot(grid_spec[1, 0]), fig.add_subplot(grid_spec[2, :])
    ax1.plot(grid, v_true, color="black", lw=0.8, label=f"detailed NEURON ({wall_detailed:.2f} s)")
    ax1.plot(grid, v_pred, color="tab:orange", lw=0.8, alpha=0.85,
             label=f"SurrogateCell ({wall_surrogate_predict * 1e3:.0f} ms)")
    ax1.set(xlabel="time (ms)", ylabel="V (mV)",
            title=f"{args.model}, {STEP_NA} nA step: {n_detailed} spikes detailed, {n_surrogate} surrogate; "
                  f"relative L2 error {100 * rel_l2:.1f}%")
    ax1.legend(frameon=False, fontsize=8, loc="upper right")
    near = (grid >= ZOOM_MS[0]) & (grid <= ZOOM_MS[1])  # action potentials at full resolution
    zoom.plot(grid[near], v_true[near], color="black", lw=1.0)
    zoom.plot(grid[near], v_pred[near], color="tab:orange", lw=1.0, alpha=0.85)
    zoom.set(xlabel="time (ms)", ylabel="V (mV)", title=f"{ZOOM_MS[0]:g}-{ZOOM_MS[1]:g} ms")
    ax2.plot(fi_amps * 1e3, fi_detailed, "o-", color="black", label="detailed")
    ax2.plot(fi_amps * 1e3, fi_surrogate, "s--", color="tab:orange", label="surrogate")
    ax2.set(xlabel="step amplitude (pA)", ylabel="firing rate (Hz)", title="FI curve")
    ax2.legend(frameon=False)
    for a, d, p, e in zip(SUBTHRESHOLD_NA, sub_detailed, sub_surrogate, sub_rmse):
        sub.plot(grid, d, color="black", lw=0.9)
        sub.plot(grid, p, color="tab:orange", lw=0.9, alpha=0.85)
        sub.annotate(f"{a * 1e3:g} pA: RMSE {e:.2f} mV", (DELAY_MS + DUR_MS / 2, float(np.mean(d[grid > 300]))),
                     textcoords="offset points", xytext=(0, 6), fontsize=8, ha="center")
    sub.set(xlabel="time (ms)", ylabel="V (mV)", title="below threshold (black detailed, orange surrogate)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
