"""How many step sweeps of a neuron the surrogate needs to draw it: unseen models measured on k sweeps (issue 26).

    python benchmarks/sweeps_needed.py --checkpoint noble_neuron/checkpoints/pv_fno_cpu.pt --data pv_draws48.h5

Each of the 10 unseen family models of `--data` (48 Long Square draws each, never trained on) is measured
(`noble_neuron.recordings.measure.measure_neuron`, as `noble-neuron measure` does) on k of its sweeps, a fixed
protocol a rig would run: two hyperpolarising steps (the draws nearest −0.10 and −0.05 nA) and k − 2 depolarising
ones (the draws nearest k − 2 amplitudes evenly spaced over (0, 0.5] nA). Its other 48 − k steps are scored against
NEURON, in three arms on the same rows: from its features alone (the dataset's feature table, the 399 reference
neurons), given the k sweeps' spike times only (its features and trains; the eFEL features from the training
median), and given the k sweeps with their voltage (its own backbone and action potential too).

Writes benchmarks/results/sweeps_needed.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
KEYS = ("spike_count_rel_error_firing", "fi_mean_abs_error_Hz", "gamma_1ms_median", "rel_l2_mean",
        "spike_time_error_order_matched_median_ms", "rheobase_abs_error_nA_median", "firing_mismatch_rate",
        "subthreshold_rmse_mV_median", "interspike_rmse_mV_median", "n_traces")


def protocol_rows(amps_nA: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The k rows (of one model, amplitudes `amps_nA`) nearest the fixed protocol's amplitudes, distinct."""
    targets = np.concatenate([[-0.10, -0.05], np.linspace(0.5 / (k - 2), 0.5, k - 2)])
    free = list(range(rows.size))
    picked = []
    for a in targets:
        j = min(free, key=lambda i: abs(amps_nA[i] - a))
        free.remove(j)
        picked.append(rows[j])
    return np.sort(np.array(picked))


def main() -> None:
    from noble_neuron.data.dataset import open_dataset
    from noble_neuron.evaluation.evaluate import fi_and_rheobase, trace_metrics
    from noble_neuron.evaluation.machine import machine_info
    from noble_neuron.recordings.measure import measure_neuron
    from noble_neuron.recordings.sweeps import StepSweeps
    from noble_neuron.surrogate.checkpoint import load_surrogate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="dataset with the unseen models' Long Square draws")
    ap.add_argument("--sweeps", type=int, nargs="+", default=[4, 6, 8, 12, 16, 24])
    ap.add_argument("--out", default=str(RESULTS / "sweeps_needed.json"))
    args = ap.parse_args()
    if min(args.sweeps) < 4:
        raise SystemExit("--sweeps: at least 4 (two hyperpolarising steps and two that may fire)")
    t0 = time.perf_counter()
    s = load_surrogate(args.checkpoint, device="cpu")
    ds = open_dataset(args.data)
    table = ds.features()
    feats = table["values"][:, [table["names"].index(n) for n in s.config.feature_names]]
    ls = ds.rows(kind="long_square")
    p0 = json.loads(ds.protocols_json[ds.protocol_index[ls[0]]])
    window = (p0["delay_ms"], p0["delay_ms"] + p0["dur_ms"])
    unseen = [m for m in range(len(ds.model_ids)) if ds.model_splits[m] == "unseen"]
    rows_of = {m: ls[ds.model_index[ls] == m] for m in unseen}
    curve = []
    for k in args.sweeps:
        scored, given = [], {"features_only": [], "spike_times": [], "with_voltage": []}
        own_feats = {"spike_times": [], "with_voltage": []}
        no_cell = 0
        for m in unseen:
            rows = rows_of[m]
            measured = protocol_rows(ds.amp_nA[rows], rows, k)
            rest = np.setdiff1d(rows, measured)
            sweeps = StepSweeps.from_traces(ds.read(measured, "stimulus_nA"), ds.read(measured), ds.dt_ms,
                                            ds.model_ids[m])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # spike times alone: the eFEL features from the training median
                spikes_only = measure_neuron(StepSweeps(sweeps.amps_nA, sweeps.delay_ms, sweeps.dur_ms,
                                                        sweeps.spikes_ms, source=sweeps.source), s)
                with_voltage = measure_neuron(sweeps, s)
            no_cell += with_voltage.cell is None
            scored.append(rest)
            given["features_only"] += [None] * rest.size
            given["spike_times"] += [spikes_only.trains] * rest.size
            given["with_voltage"] += [with_voltage.measured] * rest.size
            own_feats["spike_times"] += [spikes_only.feature_vector(s.config.feature_names)] * rest.size
            own_feats["with_voltage"] += [with_voltage.feature_vector(s.config.feature_names)] * rest.size
        scored = np.concatenate(scored)
        stim, true = ds.read(scored, "stimulus_nA"), ds.read(scored)
        row = {"sweeps": k, "models_without_own_backbone": int(no_cell)}
        for arm, measured in given.items():
            f = feats[ds.model_index[scored]] if arm == "features_only" else np.stack(own_feats[arm])
            pred = s.predict(stim, f, ds.dt_ms, check_domain=False,
                             measured=None if arm == "features_only" else measured)
            g = trace_metrics(pred, true, ds.dt_ms, window, 0, ds.amp_nA[scored])
            fi_and_rheobase(g, ds, scored, pred, true, window)
            row[arm] = {key: g.get(key) for key in KEYS}
        curve.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "what": "the 10 unseen family models measured on k of their 48 step draws (two hyperpolarising, k - 2 evenly "
                "over (0, 0.5] nA) and scored on the others: from features alone, given the k sweeps' spike times, "
                "given the k sweeps with voltage",
        "checkpoint": Path(args.checkpoint).name, "data": Path(args.data).name, "window_ms": list(window),
        "curve": curve, "wall_s": time.perf_counter() - t0, "machine": machine_info(),
        "command": "python benchmarks/sweeps_needed.py " + " ".join(Path(a).name if a.endswith((".h5", ".pt")) and
                                                                    "checkpoints" not in a else a for a in sys.argv[1:]),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
