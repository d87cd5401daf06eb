"""Surrogate vs full multicompartment NEURON solves: same models, same stimuli, same run.

    python benchmarks/speedup.py            # ~3 min on 2 CPU cores; GPU part too when CUDA is present
    python benchmarks/speedup.py --quick    # smoke test: tiny batches, no JSON unless --out is given

What is timed (wall clock, after warm-up; CUDA synchronised):
* detailed: one 515 ms Long Square of a shipped family model (237 segments) at dt 0.02 ms, fixed
  step, single core — and the same with CVode (default tolerances);
* surrogate ``predict()`` on the same stimuli/models: batch 1, and per-trace time at batches
  up to 1024 (``speedup_batched_cpu`` = detailed per-trace / surrogate per-trace at 1024);
* the same with the network's spike phase in place of a training model's own step trains
  (``surrogate_network_spikes``, ``speedup_batched_cpu_network_spikes``): what any other current and cells
  given by features get (the own-trains path skips the network for these steps);
* SurrogateCell inside NEURON: N cells with IClamps, ``finitialize`` + ``continuerun(515)``,
  engine overhead and soma stepping included; and NEURON's loop alone on a bare passive soma, the
  floor of any one-cell run (``speedup_ceiling_1cell_neuron_loop``);
* scaling with batch size and with trace length; peak memory (RSS on CPU, allocator on CUDA);
* accuracy of exactly the traces that were timed: relative L2 and spike-count match against
  the detailed solves, so a speed figure is never shown without its accuracy.

Writes benchmarks/results/speedup.json (+ speedup_gpu.json on a CUDA machine) and speedup.png.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from noble_neuron.evaluation.machine import machine_info

RESULTS = Path(__file__).parent / "results"
DELAY_MS, DUR_MS, TOTAL_MS = 15.0, 400.0, 515.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn, device: torch.device, repeats: int) -> float:
    """Best-of-`repeats` wall seconds of fn() after one warm-up call."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def detailed_solves(model_ids, amps_nA, cvode: bool):
    """Detailed traces (on the surrogate grid) and per-solve wall seconds (NEURON time only)."""
    from noble_neuron.detailed.pv_family import get_model
    from noble_neuron.stimuli.protocols import LongSquare
    from noble_neuron.simulation.simulate import simulate

    traces, walls = [], []
    for mid in model_ids:
        spec = get_model(mid).cell_spec()
        for amp in amps_nA:
            r = simulate(spec, LongSquare(step_nA=float(amp), delay_ms=DELAY_MS, dur_ms=DUR_MS, total_ms=TOTAL_MS),
                         cvode=cvode)
            traces.append(r.v_mV)
            walls.append(r.wall_s)
    return np.stack(traces), np.array(walls)


def accuracy(pred: np.ndarray, true: np.ndarray, dt_ms: float) -> dict:
    """The evaluation's trace metrics (rel L2, spike counts, timing, Gamma) of the timed traces."""
    from noble_neuron.evaluation.evaluate import trace_metrics
    from noble_neuron.features.ephys import count_spikes

    rel = np.linalg.norm(pred - true, axis=1) / np.linalg.norm(true, axis=1)
    window = (DELAY_MS, DELAY_MS + DUR_MS)
    m = trace_metrics(pred, true, dt_ms, window, efel_limit=0)
    n_pred = np.array([count_spikes(v, dt_ms, window_ms=window) for v in pred])
    n_true = np.array([count_spikes(v, dt_ms, window_ms=window) for v in true])
    return {"n_traces": int(len(rel)), "rel_l2_mean": float(rel.mean()), "rel_l2_max": float(rel.max()),
            **{k: m[k] for k in ("spike_count_exact_match_rate", "firing_mismatches", "spike_count_rel_error_firing",
                                 "spike_time_error_order_matched_median_ms", "gamma_1ms_median")},
            "spike_counts_detailed": n_true.tolist(), "spike_counts_surrogate": n_pred.tolist()}


def time_predict(s, stimuli, features, true, detailed: dict, dev, batches, quick: bool, lengths: bool = True) -> dict:
    """Per-trace `predict` time by batch size (and by trace length), peak memory and the accuracy of exactly these
    traces against the detailed solves `true`."""
    pred = s.predict(stimuli, features, s.dt_ms, check_domain=False)
    acc = accuracy(pred, true, s.dt_ms)
    per_batch = {}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for b in batches:
        x = np.repeat(stimuli, int(np.ceil(b / len(stimuli))), axis=0)[:b]
        f = np.repeat(features, int(np.ceil(b / len(features))), axis=0)[:b]
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time_call(lambda: s.predict(x, f, s.dt_ms, check_domain=False), dev, repeats=1 if b >= 256 else 3)
        per_batch[b] = {"total_s": t, "per_trace_s": t / b,
                        "peak_mem_MB": (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else
                                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        print(f"  {dev.type} batch {b:5d}: {t / b * 1e3:8.2f} ms/trace "
              f"({detailed['per_trace_s_fixed_step'] / (t / b):7.0f}x vs fixed-step NEURON)")
    by_length = {}
    for frac in ([] if not lengths else [0.25, 0.5, 1.0, 2.0] if not quick else [0.5, 1.0]):
        n = int(s.n_samples * frac)
        x = np.resize(stimuli[:1], (16, n))  # the trace repeated/cut to n samples; only timing matters
        f16 = np.repeat(features[:1], 16, axis=0)
        t = time_call(lambda: s.predict(x, f16, s.dt_ms, check_domain=False), dev, repeats=2)
        by_length[n] = t / 16
    b_big = max(batches)
    return {
        "per_trace_s_batch1": per_batch[1]["total_s"],
        "per_trace_s_by_batch": {str(b): v["per_trace_s"] for b, v in per_batch.items()},
        "peak_mem_MB_by_batch": {str(b): v["peak_mem_MB"] for b, v in per_batch.items()},
        "rss_before_MB": rss0 / 1024,
        "per_trace_s_by_length_batch16": {str(n): v for n, v in by_length.items()},
        "accuracy_same_traces": acc,
        f"speedup_batch{b_big}": detailed["per_trace_s_fixed_step"] / per_batch[b_big]["per_trace_s"],
        "speedup_batch1": detailed["per_trace_s_fixed_step"] / per_batch[1]["total_s"],
    }


def surrogate_in_neuron(model_ids, amps_nA, n_cells: int) -> dict:
    """Wall time of finitialize + continuerun(515) with n_cells SurrogateCells (fresh forward pass each run)."""
    from neuron import h

    from noble_neuron.neuron.engine import engine
    from noble_neuron.neuron.cell import SurrogateCell

    h.load_file("stdrun.hoc")
    cells, stims = [], []
    for i in range(n_cells):
        cell = SurrogateCell(model_ids[i % len(model_ids)])
        stim = h.IClamp(cell.soma(0.5))
        stim.delay, stim.dur, stim.amp = DELAY_MS, DUR_MS, float(amps_nA[i % len(amps_nA)])
        cells.append(cell)
        stims.append(stim)
    h.dt, h.steps_per_ms, h.tstop = 0.025, 40, TOTAL_MS
    h.cvode_active(0)
    walls, predicts = [], []
    for rep in range(2):
        for s in stims:
            s.amp += 1e-6 * (1 if rep % 2 == 0 else -1)  # new inputs: every run pays the forward pass
        start = time.perf_counter()
        h.finitialize(-70)
        h.continuerun(TOTAL_MS)
        walls.append(time.perf_counter() - start)
        predicts.append(engine().last_predict_s)
    start = time.perf_counter()
    h.finitialize(-70)
    h.continuerun(TOTAL_MS)
    cached = time.perf_counter() - start
    del stims, cells
    return {"n_cells": n_cells, "wall_s_per_run": min(walls), "predict_s_per_run": min(predicts),
            "wall_s_per_cell": min(walls) / n_cells, "wall_s_cached_run": cached, "neuron_dt_ms": 0.025}


def bare_soma_run_s() -> float:
    """Wall time (s) of the same finitialize + continuerun(515) at dt 0.025 ms on one passive soma and nothing
    else: NEURON's own loop, the floor of any one-cell run (a SurrogateCell's included)."""
    from neuron import h

    h.load_file("stdrun.hoc")
    soma = h.Section(name="bare_soma")
    soma.insert("pas")
    h.dt, h.steps_per_ms = 0.025, 40
    h.cvode_active(0)
    walls = []
    for _ in range(3):
        start = time.perf_counter()
        h.finitialize(-70)
        h.continuerun(TOTAL_MS)
        walls.append(time.perf_counter() - start)
    del soma
    return min(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 detailed solve, batches up to 8, no JSON/PNG by default")
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/speedup[_gpu].json)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from noble_neuron.surrogate.checkpoint import default_surrogate
    from noble_neuron.stimuli.protocols import LongSquare

    s = default_surrogate(args.checkpoint)
    train_ids = [m for m in s.train_model_ids][:3]
    amps = np.array([0.05, 0.15, 0.3]) if not args.quick else np.array([0.3])
    model_ids = train_ids if not args.quick else train_ids[:1]
    batches = [1, 4, 16, 64, 256, 1024] if not args.quick else [1, 8]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])

    print(f"detailed NEURON solves: {len(model_ids)} models x {amps.size} amplitudes, 515 ms at dt 0.02 ms ...")
    true, walls_fixed = detailed_solves(model_ids, amps, cvode=False)
    # CVode (default tolerances) on a subthreshold and a firing step; skipped in --quick (~10 s per firing trace)
    walls_cvode = np.array([]) if args.quick else detailed_solves(model_ids[:1], amps[[0, -1]], cvode=True)[1]
    detailed = {"per_trace_s_fixed_step": float(np.median(walls_fixed)),
                "per_trace_s_cvode": float(np.median(walls_cvode)) if walls_cvode.size else None,
                "per_trace_s_cvode_each": walls_cvode.tolist(),
                "n_solves_fixed": int(walls_fixed.size), "n_solves_cvode": int(walls_cvode.size),
                "dt_ms": 0.02, "segments": 237, "cores": 1}

    grid = np.arange(s.n_samples) * s.dt_ms
    stim = np.where((grid >= DELAY_MS) & (grid < DELAY_MS + DUR_MS), 1.0, 0.0)
    stimuli = np.stack([stim * a for _ in model_ids for a in amps])
    features = np.stack([s.features_of(m) for m in model_ids for _ in amps])
    assert np.allclose(stimuli[0], LongSquare(step_nA=float(amps[0]), delay_ms=DELAY_MS, dur_ms=DUR_MS,
                                              total_ms=TOTAL_MS).render(s.dt_ms))

    results = {"machine": machine_info(), "torch_threads": torch.get_num_threads(), "checkpoint": {
        "path": str(args.checkpoint or "shipped"), "n_parameters": s.metadata()["n_parameters"],
        "config": s.config.to_dict()}, "detailed": detailed, "surrogate": {}}
    for dev in devices:
        s.to(dev)
        results["surrogate"][dev.type] = time_predict(s, stimuli, features, true, detailed, dev, batches, args.quick)
        # the same traces through the network's spike phase (what currents other than one step and cells given by
        # features get): a training model's own step trains skip the network
        s.use_own_step_trains = False
        try:
            results["surrogate_network_spikes"] = results.get("surrogate_network_spikes", {})
            results["surrogate_network_spikes"][dev.type] = time_predict(s, stimuli, features, true, detailed, dev,
                                                                         batches, quick=True, lengths=False)
        finally:
            s.use_own_step_trains = True
    s.to("cpu")
    n_cells = 64 if not args.quick else 4
    results["surrogate_cell_in_neuron"] = surrogate_in_neuron(model_ids, amps, n_cells)
    results["surrogate_cell_in_neuron_1cell"] = surrogate_in_neuron(model_ids, amps[-1:], 1)
    results["neuron_bare_soma_run_s"] = bare_soma_run_s()
    cpu = results["surrogate"]["cpu"]
    results["speedup_batched_cpu"] = cpu[f"speedup_batch{max(batches)}"]
    results["speedup_batch1_cpu"] = cpu["speedup_batch1"]
    results["speedup_batched_cpu_network_spikes"] = \
        results["surrogate_network_spikes"]["cpu"][f"speedup_batch{max(batches)}"]
    results["speedup_surrogate_cell_cpu"] = (detailed["per_trace_s_fixed_step"]
                                             / results["surrogate_cell_in_neuron"]["wall_s_per_cell"])
    results["speedup_surrogate_cell_1cell_cpu"] = (detailed["per_trace_s_fixed_step"]
                                                   / results["surrogate_cell_in_neuron_1cell"]["wall_s_per_cell"])
    # no one-cell NEURON run can beat this: the detailed solve over NEURON's loop on a bare soma
    results["speedup_ceiling_1cell_neuron_loop"] = detailed["per_trace_s_fixed_step"] / results["neuron_bare_soma_run_s"]
    if "cuda" in results["surrogate"]:
        g = results["surrogate"]["cuda"]
        results["speedup_batched_gpu"] = g[f"speedup_batch{max(batches)}"]
        results["gpu_name"] = torch.cuda.get_device_name(0)

    d = detailed["per_trace_s_fixed_step"]
    print(f"\n{'':38s}{'per trace':>12s}{'speed-up':>10s}")
    print(f"{'detailed NEURON, fixed step dt 0.02':38s}{d:11.3f}s{1:9.0f}x")
    if detailed["per_trace_s_cvode"]:
        print(f"{'detailed NEURON, CVode':38s}{detailed['per_trace_s_cvode']:11.3f}s"
              f"{d / detailed['per_trace_s_cvode']:9.1f}x")
    for dev, r in results["surrogate"].items():
        for b, t in r["per_trace_s_by_batch"].items():
            print(f"{'surrogate predict, ' + dev + ', batch ' + b:38s}{t * 1e3:10.2f}ms{d / t:9.0f}x")
    sc = results["surrogate_cell_in_neuron"]
    print(f"{'SurrogateCell in NEURON, ' + str(sc['n_cells']) + ' cells':38s}{sc['wall_s_per_cell'] * 1e3:10.2f}ms"
          f"{results['speedup_surrogate_cell_cpu']:9.0f}x")
    sc1 = results["surrogate_cell_in_neuron_1cell"]
    print(f"{'SurrogateCell in NEURON, 1 cell':38s}{sc1['wall_s_per_cell'] * 1e3:10.2f}ms"
          f"{results['speedup_surrogate_cell_1cell_cpu']:9.0f}x")
    print(f"{'NEURON loop alone, a bare soma':38s}{results['neuron_bare_soma_run_s'] * 1e3:10.2f}ms"
          f"{results['speedup_ceiling_1cell_neuron_loop']:9.0f}x  (the ceiling of any one-cell run)")
    net = results["surrogate_network_spikes"]["cpu"]
    for b, t in net["per_trace_s_by_batch"].items():
        print(f"{'  the network spike phase, batch ' + b:38s}{t * 1e3:10.2f}ms{d / t:9.0f}x")
    acc = cpu["accuracy_same_traces"]
    print(f"accuracy of these traces: rel L2 {100 * acc['rel_l2_mean']:.1f}% (max {100 * acc['rel_l2_max']:.1f}%), "
          f"spike-count match {100 * acc['spike_count_exact_match_rate']:.0f}%, "
          f"spike-count error {acc['spike_count_rel_error_firing'] or 0:.1%}, Gamma(1 ms) {acc['gamma_1ms_median']}, "
          f"firing mismatches {acc['firing_mismatches']}/{acc['n_traces']}")

    out = args.out or (None if args.quick else
                       RESULTS / ("speedup_gpu.json" if "cuda" in results["surrogate"] else "speedup.json"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=1))
        print(f"wrote {out}")
        plot(results, Path(out).with_suffix(".png"))
    print(json.dumps({"speedup_batched_cpu": results["speedup_batched_cpu"]}))


def plot(results: dict, path: Path) -> None:
    from noble_neuron.evaluation.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    d = results["detailed"]["per_trace_s_fixed_step"]
    for dev, r in results["surrogate"].items():
        b = np.array([int(k) for k in r["per_trace_s_by_batch"]])
        t = np.array(list(r["per_trace_s_by_batch"].values()))
        ax.loglog(b, t * 1e3, "o-", label=f"surrogate ({dev})")
    b = np.array([int(k) for k in results["surrogate"]["cpu"]["per_trace_s_by_batch"]])
    ax.loglog(b, np.full(b.shape, d * 1e3), "k--", label="detailed NEURON (1 core, per trace)")
    ax.set(xlabel="batch size (traces)", ylabel="wall time per trace (ms)", title="515 ms Long Square trace")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
