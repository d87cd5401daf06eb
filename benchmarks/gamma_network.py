"""A recurrent PV interneuron gamma network (ING), each arm the same network in its own NEURON run.

    python benchmarks/gamma_network.py                                  # 40 cells, 500 ms, all arms (~3 min, 2 cores)
    python benchmarks/gamma_network.py --cells 400                      # 400 cells, same total inhibition per cell
    python benchmarks/gamma_network.py --cells 400 --tstop 300 --arms hybrid,surrogate,reduce
    python benchmarks/gamma_network.py --quick                          # smoke test: 6 cells, 150 ms, no files unless --out

The network (parameters chosen once on the detailed network, never tuned on the surrogates): N cells of the
shipped family, restricted to the models whose FI slope at threshold (``s_thr``) is <= 150 Hz/nA (the most
excitable ones fire 120-260 Hz and wash out the rhythm), cycled in model-id order; all-to-all inhibition without
self-connections, one Exp2Syn per soma (tau1 0.5 ms, tau2 5 ms, e -75 mV), each NetCon watching a presynaptic
soma's voltage (threshold `SPIKE_THRESHOLD_MV`, delay 1 ms) with weight 2 nS x 40 / N, so that the total
inhibitory conductance a cell receives does not depend on N; tonic drive: one IClamp per soma from 0 ms,
amplitude uniform in 0.15-0.3 nA (seeded, the same for every arm). 500 ms, fixed step 0.025 ms, finitialize(-70).
Each arm (`network_arms.build_cells`: ``detailed``, ``hybrid``, ``surrogate``, ``reduce``, ``adex``, ``gif``) runs in a
fresh Python process; the wall time of ``finitialize`` + ``continuerun`` is its cost, the spike times its answer.

Metrics (after a 100 ms transient): mean rate, gamma peak frequency and synchrony index of the population spike
histogram (see `synchrony_index`), fraction of ISIs below 5 ms; each arm is compared with the detailed arm against
the issue's goals (`GOALS`). Writes ``benchmarks/results/gamma_network[_<N>cells].json`` and a ``.png`` with one
column per arm: raster, population PSTH (5 ms bins), spectrum.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from network_arms import ARMS as _ALL_ARMS, build_cells, run_arm_process

RESULTS = Path(__file__).parent / "results"
ARMS = tuple(a for a in _ALL_ARMS if a != "reduce3")
DEFAULT_ARMS = ("detailed", "hybrid", "hybrid1", "surrogate", "reduce", "adex", "gif")

MAX_S_THR_HZ_PER_NA = 150.0
TAU1_MS, TAU2_MS, E_INH_MV = 0.5, 5.0, -75.0
W_TOTAL_NS = 2.0 * 40  # 2 nS per connection at 40 cells
DELAY_MS = 1.0  # the streaming surrogate's epochs need < delay / 2: 1 ms allows 0.3 ms epochs, so all arms use 1 ms
AMP_RANGE_NA = (0.15, 0.3)
DRIVE_SEED = 0
DT_MS, V_INIT_MV = 0.025, -70.0
TRANSIENT_MS = 100.0
HIST_BIN_MS, PSTH_BIN_MS = 1.0, 5.0
GAMMA_BAND_HZ = (20.0, 150.0)
PEAK_HALF_WIDTH_HZ = 5.0
SHORT_ISI_MS = 5.0
GOALS = {"peak_within_Hz": 3.0, "synchrony_within_rel": 0.15, "short_isi_within_factor": 2.0}


# ---------------------------------------------------------------------------------------------- the network


def gamma_model_ids(n_cells: int) -> tuple[list[str], dict[str, float]]:
    """(model id of each cell, {eligible id: s_thr Hz/nA}).

    ``s_thr`` is read from the shipped checkpoint's per-model features (measured on the detailed models'
    Long Square steps, 10 pA grid); eligible models have s_thr <= `MAX_S_THR_HZ_PER_NA` (35 of 60). Cells cycle
    through them in id order, so every eligible model appears before any repeats.
    """
    from noble_neuron.surrogate.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint

    features = load_checkpoint(SHIPPED_CHECKPOINT)["metadata"]["model_features"]
    eligible = {m: float(f["s_thr_Hz_per_nA"]) for m, f in sorted(features.items())
                if float(f["s_thr_Hz_per_nA"]) <= MAX_S_THR_HZ_PER_NA + 1e-6}  # hof_013: 149.99999999999997
    ids = list(eligible)
    return [ids[i % len(ids)] for i in range(n_cells)], eligible


def drive_amplitudes(n_cells: int, seed: int = DRIVE_SEED) -> np.ndarray:
    """Tonic IClamp amplitude of each cell (nA), uniform in `AMP_RANGE_NA`."""
    return np.random.default_rng(seed).uniform(*AMP_RANGE_NA, size=n_cells)


def run_arm(args) -> None:
    """Build one arm's network, run it, save its spike times and wall time (called in a fresh process)."""
    from neuron import h

    from noble_neuron.constants import SPIKE_THRESHOLD_MV

    h.load_file("stdrun.hoc")
    ids = args.ids.split(",")
    n = len(ids)
    cells = build_cells(args.run_arm, ids)
    weight_uS = W_TOTAL_NS / n * 1e-3
    keep, syns, spikes = [], [], []
    for cell, amp in zip(cells, drive_amplitudes(n)):
        stim = h.IClamp(cell.soma(0.5))
        stim.delay, stim.dur, stim.amp = 0.0, 1e9, float(amp)
        syn = h.Exp2Syn(cell.soma(0.5))
        syn.tau1, syn.tau2, syn.e = TAU1_MS, TAU2_MS, E_INH_MV
        rec = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)
        rec.threshold = SPIKE_THRESHOLD_MV
        spikes.append(h.Vector())
        rec.record(spikes[-1])
        keep += [stim, rec]
        syns.append(syn)
    for j, pre in enumerate(cells):
        for i, syn in enumerate(syns):
            if i != j:
                nc = h.NetCon(pre.soma(0.5)._ref_v, syn, sec=pre.soma)
                nc.threshold, nc.delay, nc.weight[0] = SPIKE_THRESHOLD_MV, DELAY_MS, weight_uS
                keep.append(nc)
    h.cvode_active(0)
    h.dt = DT_MS
    start = time.perf_counter()
    h.finitialize(V_INIT_MV)
    h.continuerun(args.tstop)
    wall = time.perf_counter() - start
    split = {}
    if args.run_arm == "surrogate":
        from noble_neuron.neuron.engine import engine

        group = engine().network_groups[0]
        split = {"wall_s_model": group.predict_s, "wall_s_engine": group.engine_s, "epoch_ms": group.epoch_ms}
    times = [np.array(v) for v in spikes]
    segments = sum(sec.nseg for sec in h.allsec()) / n
    np.savez(args.spikes_out, times=np.concatenate(times) if times else np.zeros(0),
             cell=np.concatenate([np.full(len(t), i) for i, t in enumerate(times)]) if times else np.zeros(0, int),
             wall_s=wall, segments=segments, split=json.dumps(split))


# ---------------------------------------------------------------------------------------------- metrics (numpy)


def mean_rate_Hz(times_ms: np.ndarray, n_cells: int, t0_ms: float, t1_ms: float) -> float:
    """Spikes in [t0, t1) per cell per second (Hz)."""
    sel = (times_ms >= t0_ms) & (times_ms < t1_ms)
    return float(sel.sum() / n_cells / ((t1_ms - t0_ms) * 1e-3))


def population_histogram(times_ms: np.ndarray, t0_ms: float, t1_ms: float, bin_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """(bin left edges ms, spike count of all cells per bin) over [t0, t1)."""
    edges = t0_ms + np.arange(int(round((t1_ms - t0_ms) / bin_ms)) + 1) * bin_ms
    counts, _ = np.histogram(times_ms, bins=edges)
    return edges[:-1], counts.astype(float)


def power_spectrum(counts: np.ndarray, bin_ms: float, min_nfft: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies Hz, one-sided power) of a spike-count histogram: linear trend removed, Hann window,
    zero-padded to at least `min_nfft` bins (1 Hz grid at 1 ms bins; the true resolution is 1 / duration)."""
    x = np.asarray(counts, float)
    k = np.arange(x.size)
    if x.size > 1:
        x = x - np.polyval(np.polyfit(k, x, 1), k)
    x = x * np.hanning(x.size)
    nfft = max(min_nfft, x.size)
    p = np.abs(np.fft.rfft(x, nfft)) ** 2
    p[1:] *= 2.0
    return np.fft.rfftfreq(nfft, bin_ms * 1e-3), p


def gamma_peak_Hz(freqs: np.ndarray, power: np.ndarray, band_Hz: tuple[float, float] = GAMMA_BAND_HZ) -> float:
    """Frequency (Hz) of the largest power in `band_Hz` (NaN when the band holds no power)."""
    sel = (freqs >= band_Hz[0]) & (freqs <= band_Hz[1])
    if not sel.any() or not np.any(power[sel] > 0):
        return float("nan")
    return float(freqs[sel][np.argmax(power[sel])])


def synchrony_index(freqs: np.ndarray, power: np.ndarray, peak_Hz: float,
                    half_width_Hz: float = PEAK_HALF_WIDTH_HZ) -> float:
    """Power within ±`half_width_Hz` of `peak_Hz` / total power over 0 < f <= Nyquist (DC excluded).

    With the trend removed this is the fraction of the population histogram's variance carried by the gamma peak:
    0 for asynchronous firing (a flat spectrum gives ~ 2·half_width / Nyquist, 0.02 at 1 ms bins), toward 1 when
    the population fires in one clean rhythm.
    """
    total = power[freqs > 0].sum()
    if not np.isfinite(peak_Hz) or total <= 0:
        return 0.0
    return float(power[(freqs > 0) & (np.abs(freqs - peak_Hz) <= half_width_Hz)].sum() / total)


def short_isi_fraction(times_ms: np.ndarray, cell: np.ndarray, t0_ms: float, limit_ms: float = SHORT_ISI_MS) -> float:
    """Fraction of all ISIs (every cell's spikes at or after t0) shorter than `limit_ms` (NaN without ISIs)."""
    isis = []
    for c in np.unique(cell):
        t = np.sort(times_ms[(cell == c) & (times_ms >= t0_ms)])
        isis.append(np.diff(t))
    isis = np.concatenate(isis) if isis else np.zeros(0)
    return float((isis < limit_ms).mean()) if isis.size else float("nan")


def network_metrics(times_ms: np.ndarray, cell: np.ndarray, n_cells: int, tstop_ms: float,
                    transient_ms: float = TRANSIENT_MS) -> dict:
    """Rate, gamma peak, synchrony index and short-ISI fraction of one run (spike times ms, cell index each)."""
    _, counts = population_histogram(times_ms, transient_ms, tstop_ms, HIST_BIN_MS)
    f, p = power_spectrum(counts, HIST_BIN_MS)
    peak = gamma_peak_Hz(f, p)
    return {"rate_Hz_mean": mean_rate_Hz(times_ms, n_cells, transient_ms, tstop_ms),
            "peak_Hz": peak, "synchrony_index": synchrony_index(f, p, peak),
            "short_isi_fraction": short_isi_fraction(times_ms, cell, transient_ms),
            "n_spikes": int((times_ms >= transient_ms).sum()),
            "silent_cells": int(n_cells - np.unique(cell[times_ms >= transient_ms]).size)}


def _ratio(a: float, b: float) -> float:
    if b == 0:
        return 1.0 if a == 0 else float("inf")
    return float(a / b)


def versus_detailed(arm: dict, det: dict) -> dict:
    """Differences and ratios of `arm`'s metrics to the detailed arm's, and pass/fail against `GOALS`."""
    out = {"peak_diff_Hz": arm["peak_Hz"] - det["peak_Hz"],
           "synchrony_ratio": _ratio(arm["synchrony_index"], det["synchrony_index"]),
           "short_isi_ratio": _ratio(arm["short_isi_fraction"], det["short_isi_fraction"]),
           "rate_ratio": _ratio(arm["rate_Hz_mean"], det["rate_Hz_mean"])}
    k = GOALS["short_isi_within_factor"]
    passed = {"peak": bool(abs(out["peak_diff_Hz"]) <= GOALS["peak_within_Hz"]),
              "synchrony": bool(abs(out["synchrony_ratio"] - 1.0) <= GOALS["synchrony_within_rel"]),
              "short_isi": bool(1.0 / k <= out["short_isi_ratio"] <= k)}
    return {**out, "pass": {**passed, "all": all(passed.values())}}


# ---------------------------------------------------------------------------------------------- figure


def plot(runs: dict, result: dict, path: Path) -> Path:
    """One column per arm: raster, population PSTH (5 ms bins), spectrum (fraction of total power per Hz)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in runs if "times" in runs[a]]
    n, tstop = result["n_cells"], result["tstop_ms"]
    fig, axes = plt.subplots(3, len(arms), figsize=(3.2 * len(arms), 7.5), sharex="row", sharey="row", squeeze=False)
    for col, arm in enumerate(arms):
        times, cell = runs[arm]["times"], runs[arm]["cell"]
        m = result["arms"][arm]
        ax = axes[0, col]
        ax.scatter(times, cell, s=6 if n <= 100 else 0.3, color="k", marker="|" if n <= 100 else ".", lw=0.6 if n <= 100 else 0)
        ax.axvspan(0, TRANSIENT_MS, color="0.9", zorder=-1)
        ax.set_xlim(0, tstop)
        ax.set_ylim(-0.5, n - 0.5)
        speed = "" if arm == "detailed" else f", {m['speedup_vs_detailed']:.1f}×"
        ax.set_title(f"{arm} ({m['wall_s']:.3g} s{speed})\npeak {m['peak_Hz']:.0f} Hz, sync {m['synchrony_index']:.2f}, "
                     f"{m['rate_Hz_mean']:.0f} Hz", fontsize=9)
        ax = axes[1, col]
        t, counts = population_histogram(times, 0.0, tstop, PSTH_BIN_MS)
        ax.step(t, counts / n / (PSTH_BIN_MS * 1e-3), where="post", color="C0", lw=0.8)
        ax.axvspan(0, TRANSIENT_MS, color="0.9", zorder=-1)
        ax.set_xlabel("time (ms)")
        ax = axes[2, col]
        _, counts = population_histogram(times, TRANSIENT_MS, tstop, HIST_BIN_MS)
        f, p = power_spectrum(counts, HIST_BIN_MS)
        total = p[f > 0].sum()
        ax.plot(f, p / total if total > 0 else p, color="C3", lw=0.8)
        if np.isfinite(m["peak_Hz"]):
            ax.axvspan(m["peak_Hz"] - PEAK_HALF_WIDTH_HZ, m["peak_Hz"] + PEAK_HALF_WIDTH_HZ, color="C3", alpha=0.15)
        ax.axvspan(*GAMMA_BAND_HZ, color="0.95", zorder=-1)
        ax.set_xlim(0, 250)
        ax.set_xlabel("frequency (Hz)")
    axes[0, 0].set_ylabel("cell")
    axes[1, 0].set_ylabel("population rate (Hz/cell)")
    axes[2, 0].set_ylabel("power / total power")
    fig.suptitle(f"PV gamma (ING) network: {n} cells, all-to-all Exp2Syn {TAU1_MS:g}/{TAU2_MS:g} ms at {E_INH_MV:g} mV, "
                 f"{W_TOTAL_NS / n:.3g} nS, tonic {AMP_RANGE_NA[0]:g}–{AMP_RANGE_NA[1]:g} nA", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--tstop", type=float, default=500.0, help="ms")
    ap.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"comma-separated, from {','.join(ARMS)} "
                    "(detailed is always run)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="JSON path (the PNG goes next to it)")
    ap.add_argument("--run-arm", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ids", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spikes-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.cells, args.tstop = 6, 150.0
    if args.run_arm:
        return run_arm(args)
    if args.cells < 2 or args.tstop <= TRANSIENT_MS:
        raise SystemExit(f"gamma_network.py: need --cells >= 2 and --tstop > {TRANSIENT_MS:g} ms (the transient)")
    arms = ["detailed"] + [a for a in args.arms.split(",") if a and a != "detailed"]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"gamma_network.py: unknown arms {unknown}; choose from {','.join(ARMS)}")
    ids, eligible = gamma_model_ids(args.cells)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in arms:
            path = Path(tmp) / f"{arm}.npz"
            cmd = [sys.executable, __file__, "--run-arm", arm, "--spikes-out", str(path), "--ids", ",".join(ids),
                   "--tstop", str(args.tstop)]
            error = run_arm_process(arm, cmd)
            if error:
                runs[arm] = {"error": error}
                continue
            with np.load(path) as z:
                runs[arm] = {"times": z["times"], "cell": z["cell"].astype(int), "wall_s": float(z["wall_s"]),
                             "segments_per_cell": float(z["segments"]), "split": json.loads(str(z["split"]))}
    if "times" not in runs["detailed"]:
        raise SystemExit(f"the detailed arm failed: {runs['detailed']['error']}")
    from noble_neuron.evaluation.machine import machine_info

    result = {"machine": machine_info(), "command": "python benchmarks/gamma_network.py " + " ".join(sys.argv[1:]),
              "n_cells": args.cells, "tstop_ms": args.tstop,
              "parameters": {"neuron_dt_ms": DT_MS, "v_init_mV": V_INIT_MV, "syn": "Exp2Syn on soma(0.5)",
                             "tau1_ms": TAU1_MS, "tau2_ms": TAU2_MS, "e_mV": E_INH_MV,
                             "weight_nS_per_connection": W_TOTAL_NS / args.cells, "total_weight_nS_per_cell":
                             W_TOTAL_NS * (args.cells - 1) / args.cells, "delay_ms": DELAY_MS,
                             "connectivity": "all-to-all, no self-connections", "drive": "IClamp from 0 ms",
                             "amp_range_nA": list(AMP_RANGE_NA), "drive_seed": DRIVE_SEED,
                             "transient_ms": TRANSIENT_MS, "hist_bin_ms": HIST_BIN_MS, "gamma_band_Hz": list(GAMMA_BAND_HZ),
                             "peak_half_width_Hz": PEAK_HALF_WIDTH_HZ, "short_isi_ms": SHORT_ISI_MS,
                             "synchrony_index": "power within ±5 Hz of the gamma peak / total power over 0 < f <= 500 Hz "
                                                "(1 ms bins, linear trend removed, Hann window)"},
              "model_selection": f"models of the shipped family with s_thr <= {MAX_S_THR_HZ_PER_NA:g} Hz/nA (per-model "
                                 "features of the shipped checkpoint), cycled in id order",
              "eligible_models_s_thr_Hz_per_nA": eligible, "model_ids": ids,
              "drive_amps_nA": [round(float(a), 6) for a in drive_amplitudes(args.cells)], "goals": GOALS, "arms": {}}
    det = runs["detailed"]
    det_m = network_metrics(det["times"], det["cell"], args.cells, args.tstop)
    for arm, run in runs.items():
        if "times" not in run:
            result["arms"][arm] = {"error": run["error"]}
            continue
        m = det_m if arm == "detailed" else network_metrics(run["times"], run["cell"], args.cells, args.tstop)
        entry = {**m, "wall_s": run["wall_s"], "speedup_vs_detailed": det["wall_s"] / run["wall_s"],
                 "segments_per_cell": run["segments_per_cell"], **run["split"]}
        if arm != "detailed":
            entry["vs_detailed"] = versus_detailed(m, det_m)
        result["arms"][arm] = entry
    print(f"{'arm':10s} {'peak Hz':>7s} {'sync':>6s} {'ISI<5ms':>8s} {'rate Hz':>8s} {'wall s':>7s} {'speed':>7s}  goals")
    for arm, r in result["arms"].items():
        if "error" in r:
            print(f"{arm:10s} failed: {r['error']}")
            continue
        goals = "" if arm == "detailed" else " ".join(f"{k}:{'ok' if v else 'FAIL'}"
                                                      for k, v in r["vs_detailed"]["pass"].items() if k != "all")
        print(f"{arm:10s} {r['peak_Hz']:7.1f} {r['synchrony_index']:6.3f} {r['short_isi_fraction']:8.3%} "
              f"{r['rate_Hz_mean']:8.1f} {r['wall_s']:7.1f} {r['speedup_vs_detailed']:6.1f}×  {goals}")
    out = args.out or (None if args.quick else RESULTS / f"gamma_network{'' if args.cells == 40 else f'_{args.cells}cells'}.json")
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        print(f"wrote {out} and {plot(runs, result, out.with_suffix('.png'))}")


if __name__ == "__main__":
    main()
