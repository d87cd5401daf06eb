"""Network checkpoint offline: rolled out over held-out current traces, spikes and voltage vs NEURON.

    python benchmarks/network_rollout.py --data pv_streaming.h5 --plot benchmarks/results/network_rollout.png
        # the streaming dataset (README, network mode): 140 traces of 2 s of the 10 unseen models, ~1 min

Runs the network-mode checkpoint (default: the shipped one) over every trace (OU currents, PSC
barrages, steps, ramps) of the dataset's unseen models (never trained on, each with its own
stimulus draws) exactly as the NEURON engine does (`noble_neuron.training.rollout`, in 0.6 ms
epochs), and compares with the detailed model's
traces: spike counts, spike-time coincidence Gamma (+-2 ms), firing rates and the RMSE of the
voltage clipped at -55 mV. No synapses here: this isolates the surrogate from the conductance
coupling that benchmarks/network.py adds. → benchmarks/results/network_rollout.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from noble_neuron.evaluation.machine import machine_info
from noble_neuron.features.spike_metrics import coincidence_gamma
from noble_neuron.training.streaming import SPARSE_RATE_HZ

RESULTS = Path(__file__).parent / "results"
#: detailed-rate bands (Hz) of the OU-current and barrage traces: sparse fluctuation-driven firing (the regime
#: training's ``sparse_oversample`` repeats), moderate, fast
RATE_BANDS_HZ = ((0.0, SPARSE_RATE_HZ), (SPARSE_RATE_HZ, 60.0), (60.0, 1000.0))


def _shown(path: Path) -> str:
    """A path relative to the repository when it lies inside it (results carry no machine paths)."""
    p, root = Path(path).resolve(), Path(__file__).resolve().parent.parent
    return str(p.relative_to(root)) if p.is_relative_to(root) else p.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="network dataset (generate --protocol streaming) of held-out models")
    ap.add_argument("--checkpoint", default=None, help="streaming network checkpoint (default: the shipped one)")
    ap.add_argument("--split", default="unseen", help="models of this split (default: unseen)")
    ap.add_argument("--out", default=str(RESULTS / "network_rollout.json"))
    ap.add_argument("--per-kind", type=int, default=None, help="only the first N traces of each stimulus kind")
    ap.add_argument("--plot", default=None, help="PNG of one trace per stimulus kind (e.g. "
                    "benchmarks/results/network_rollout.png)")
    args = ap.parse_args()

    from noble_neuron.surrogate.checkpoint import SHIPPED_NETWORK_CHECKPOINT, load_surrogate
    from noble_neuron.data.dataset import open_dataset
    from noble_neuron.training.rollout import streaming_rollout
    from noble_neuron.features.spikes import upward_crossings

    path = Path(args.checkpoint or SHIPPED_NETWORK_CHECKPOINT)
    s = load_surrogate(path, device="cpu")
    ds = open_dataset(args.data)
    rows = ds.rows()
    rows = rows[np.array(ds.model_splits)[ds.model_index[rows]] == args.split]
    if rows.size == 0:
        raise SystemExit(f"{args.data} has no finished rows of {args.split!r} models")
    kinds = np.array([json.loads(ds.protocols_json[p])["kind"] for p in ds.protocol_index[rows]])
    if args.per_kind is not None:  # the first N traces of each kind (a slow checkpoint on a subset)
        keep = np.concatenate([np.flatnonzero(kinds == k)[:args.per_kind] for k in sorted(set(kinds))])
        rows, kinds = rows[np.sort(keep)], kinds[np.sort(keep)]
    x, y = ds.read(rows, "stimulus_nA"), ds.read(rows, "voltage_mV")
    feats = ds.features()
    if not feats:
        raise SystemExit(f"{args.data} has no features; run noble-neuron features --data {args.data} "
                         f"--copy-from {path}")
    f = feats["values"][ds.model_index[rows]][:, [feats["names"].index(n) for n in s.config.feature_names]]
    start = time.perf_counter()
    chunk_steps = 2  # model steps per epoch, as the engine's 0.6 ms epochs
    v, _ = streaming_rollout(s, x, f, v_rest_mV=y[:, 0], chunk_steps=chunk_steps)
    wall = time.perf_counter() - start
    t = np.arange(x.shape[1]) * ds.dt_ms
    dur_s = t[-1] / 1000.0
    rs, cs = upward_crossings(v)
    rd, cd = upward_crossings(y)
    per_kind = {}
    for kind in sorted(set(kinds)):
        idx = np.flatnonzero(kinds == kind)
        n_d = np.array([np.sum(rd == i) for i in idx])
        n_s = np.array([np.sum(rs == i) for i in idx])
        gam = [coincidence_gamma(t[cd[rd == i]], t[cs[rs == i]], 2.0, t[-1]) for i in idx]
        rmse = [float(np.sqrt(np.mean((np.minimum(v[i], -55.0) - np.minimum(y[i], -55.0)) ** 2))) for i in idx]
        per_kind[kind] = {
            "n_traces": int(idx.size), "spikes_detailed": int(n_d.sum()), "spikes_surrogate": int(n_s.sum()),
            "rate_Hz_detailed_mean": float(n_d.mean() / dur_s), "rate_Hz_surrogate_mean": float(n_s.mean() / dur_s),
            "spike_count_rel_error_median": float(np.median(np.abs(n_s - n_d) / np.maximum(n_d, 1))),
            "gamma_2ms_median": float(np.median(gam)), "gamma_2ms_mean": float(np.mean(gam)),
            "firing_mismatches": int(np.sum((n_d > 0) != (n_s > 0))),
            "clipped_voltage_rmse_mV_median": float(np.median(rmse)),
        }
    # by how fast the detailed cell fires (OU currents and barrages): the sparse, fluctuation-driven regime apart;
    # the fitted AdEx baseline on the same traces (noble_neuron/baselines/pv_family_adex.json)
    from noble_neuron.baselines.adex import load_fits, simulate_adex

    fits = load_fits()
    ids = [ds.model_ids[m] for m in ds.model_index[rows]]
    noisy = np.flatnonzero(np.isin(kinds, ["ou_noise", "synaptic_barrage"]))
    _, adex = simulate_adex([fits[ids[i]] for i in noisy], x[noisy], ds.dt_ms, v0_mV=y[noisy, 0], substeps=3)
    rate_d = np.array([np.sum(rd == i) for i in noisy]) / dur_s
    per_rate_band = {}
    for lo, hi in RATE_BANDS_HZ:
        sel = np.flatnonzero((rate_d > lo) & (rate_d <= hi))
        if sel.size == 0:
            continue
        det = [t[cd[rd == noisy[j]]] for j in sel]
        sur = [t[cs[rs == noisy[j]]] for j in sel]
        per_rate_band[f"{lo:g}-{hi:g}_Hz"] = {
            "n_traces": int(sel.size), "rate_Hz_detailed_mean": float(rate_d[sel].mean()),
            "rate_Hz_surrogate_mean": float(np.mean([a.size for a in sur]) / dur_s),
            "gamma_2ms_median": float(np.median([coincidence_gamma(d, a, 2.0, t[-1]) for d, a in zip(det, sur)])),
            "rate_Hz_adex_mean": float(np.mean([adex[j].size for j in sel]) / dur_s),
            "gamma_2ms_median_adex": float(np.median([coincidence_gamma(d, adex[j], 2.0, t[-1])
                                                      for d, j in zip(det, sel)]))}
    if args.plot:  # one trace of each kind, the first 600 ms, as a user would look at them
        from noble_neuron.evaluation.plots import plot_trace_comparison

        show = t <= 600.0
        pairs = []
        for kind in sorted(set(kinds)):
            i = int(np.flatnonzero(kinds == kind)[0])
            mid = ds.model_ids[ds.model_index[rows[i]]]
            pairs.append((f"{kind}, {mid} (unseen): detailed {int(np.sum(rd == i))} vs surrogate "
                          f"{int(np.sum(rs == i))} spikes in {t[-1] / 1000:.1f} s", y[i][show], v[i][show]))
        plot_trace_comparison(t[show], pairs, args.plot)
        print(f"wrote {args.plot}")
    result = {"machine": machine_info(), "checkpoint": _shown(path), "data": _shown(Path(args.data)),
              "split": args.split,
              "n_models": int(np.unique(ds.model_index[rows]).size),
              "epoch_ms": chunk_steps * s.config.time_coarsening * s.dt_ms, "spike_logit_shift": s.spike_logit_shift,
              "wall_s_rollout": wall, "per_kind": per_kind, "per_rate_band": per_rate_band}
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
