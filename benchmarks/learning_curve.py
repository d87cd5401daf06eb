"""Unseen-model spike trains vs the number of reference neurons (issue 26's learning curve).

    python benchmarks/learning_curve.py --checkpoint noble_neuron/checkpoints/pv_fno_cpu.pt \
        --data pv_draws48.h5 --population population.h5 population2.h5

A neuron given by its features fires, under a step, the blended trains of its nearest neurons with trains
(`noble_neuron.surrogate.event_model.neighbour_step_train`, the shipped path for the 10 unseen family
models). This measures how that answer improves with more reference neurons: the checkpoint's 50 training
models plus n random members (several subsets each) of an acceptance-sampled population (`noble-neuron
build-population`, none near a held-out model, 16 draws each: `--protocol population_draws`), or the population
alone, on every step of the 10 unseen models of `--data`; the same with the 50 training models as queries
(population only: the validation set); and models × draws per model at a fixed simulation count (a model's trains
thinned to fewer draws). The population's features are measured on the checkpoint's own protocol, as
`noble-neuron add-references --feature-protocol train_draws_48` stores them.

Writes benchmarks/results/learning_curve.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def train_metrics(pred: list[np.ndarray], true: list[np.ndarray], models: np.ndarray, window_ms) -> dict:
    """Spike-train agreement (spike times ms, window-relative counts) of predicted vs detailed trains."""
    from noble_neuron.features.spike_metrics import coincidence_gamma

    lo, hi = window_ms
    dur_s = (hi - lo) * 1e-3
    inside = [[t[(t >= lo) & (t < hi)] for t in trains] for trains in (pred, true)]
    n_pred = np.array([t.size for t in inside[0]])
    n_true = np.array([t.size for t in inside[1]])
    both = (n_pred > 0) & (n_true > 0)
    gamma, order = [], []
    for i in np.flatnonzero(both):
        tp, tt = inside[0][i], inside[1][i]
        gamma.append(coincidence_gamma(tt, tp, 1.0, hi - lo))
        n = min(tp.size, tt.size)
        order.append(np.abs(tp[:n] - tt[:n]))
    fi = [np.mean(np.abs(n_pred[models == m] - n_true[models == m])) / dur_s for m in np.unique(models)]
    return {"spike_count_rel_error_firing": float(np.mean(np.abs(n_pred[both] - n_true[both]) / n_true[both])),
            "fi_mean_abs_error_Hz": float(np.mean(fi)),
            "gamma_1ms_median": float(np.median(gamma)),
            "spike_time_error_order_matched_median_ms": float(np.median(np.concatenate(order))),
            "firing_mismatch_rate": float(np.mean((n_pred > 0) != (n_true > 0))),
            "n_traces": int(n_true.size)}


def thinned(reference, keep_every: int):
    """The reference neuron with every `keep_every`-th of its step amplitudes (the end ones kept): fewer draws."""
    from noble_neuron.surrogate.references import ReferenceNeuron
    from noble_neuron.surrogate.step_trains import StepTrains

    trains = reference.trains
    idx = np.unique(np.r_[np.arange(0, trains.amps_nA.size, keep_every), trains.amps_nA.size - 1])
    starts = np.r_[0, np.cumsum(trains.counts)]
    kept = StepTrains(trains.dur_ms, trains.amps_nA[idx], trains.counts[idx],
                      np.concatenate([trains.times_ms[starts[i]:starts[i + 1]] for i in idx]))
    return ReferenceNeuron(reference.features, kept, reference.after_step_firing_nA)


def predict_trains(s, backbones: dict, references: dict, features: np.ndarray, stim: np.ndarray) -> list[np.ndarray]:
    """Spike times (ms) of neurons given by raw features (N, F) under steps (N, L) nA, by the shipped path for a
    feature-given neuron (`event_model._feature_cell_train`) with these training backbones and reference neurons."""
    from noble_neuron.surrogate.event_model import _feature_cell_train

    s.backbones, s.references = backbones, references
    out = []
    for r in range(stim.shape[0]):
        found = _feature_cell_train(s, features[r], None, stim[r])
        out.append(np.zeros(0) if found is None else found[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="the family dataset (its unseen models are scored)")
    ap.add_argument("--population", nargs="+", required=True, help="population dataset(s), features extracted")
    ap.add_argument("--sizes", nargs="+", type=int, default=[0, 25, 50, 100, 150, 200, 300, 400])
    ap.add_argument("--repeats", type=int, default=5, help="random population subsets per size")
    ap.add_argument("--out", default=str(RESULTS / "learning_curve.json"))
    args = ap.parse_args()

    from noble_neuron.data.dataset import open_dataset
    from noble_neuron.evaluation.machine import machine_info
    from noble_neuron.features.spikes import spike_times
    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.training.references import SHIPPED_FEATURE_PROTOCOL, add_references

    t0 = time.perf_counter()
    s = load_surrogate(args.checkpoint)  # its own reference neurons, if any, are set aside: each row sets its own
    names = list(s.config.feature_names)
    training = dict(s.backbones)

    with tempfile.TemporaryDirectory() as tmp:  # the population as `noble-neuron add-references` stores it
        population = load_surrogate(add_references(args.checkpoint, args.population, Path(tmp) / "r.pt",
                                                   feature_protocol=SHIPPED_FEATURE_PROTOCOL)).references
    pop_ids = sorted(population)
    sizes = sorted({min(n, len(pop_ids)) for n in args.sizes})  # the whole population at the largest size

    ds = open_dataset(args.data)
    table = ds.features()
    cols = [table["names"].index(n) for n in names]

    def queries(split: str):
        """(currents, detailed spike times, features, model index) of every step of the dataset's `split` models."""
        rows = ds.rows(kind="long_square")
        rows = rows[np.asarray(ds.model_splits)[ds.model_index[rows]] == split]
        return (ds.read(rows, "stimulus_nA"), [spike_times(v, ds.dt_ms) for v in ds.read(rows, "voltage_mV")],
                table["values"][ds.model_index[rows]][:, cols], ds.model_index[rows])

    unseen, training_queries = queries("unseen"), queries("train")
    on = np.flatnonzero(np.abs(unseen[0][0]) > 1e-6)
    window = (on[0] * ds.dt_ms, (on[-1] + 1) * ds.dt_ms)

    def score(backbones: dict, refs: dict, q=unseen) -> dict:
        stim, true, feats, models = q
        return train_metrics(predict_trains(s, backbones, refs, feats, stim), true, models, window)

    rng = np.random.default_rng(0)
    curve = []
    for n in sizes:
        for with_training in (True, False):
            if not with_training and n < 25:
                continue
            reps = 1 if n in (0, len(pop_ids)) else args.repeats
            results = []
            for _ in range(reps):
                pick = rng.choice(pop_ids, n, replace=False) if n < len(pop_ids) else pop_ids
                results.append(score(training if with_training else {}, {m: population[m] for m in pick}))
            row = {"population_models": n, "training_models": len(training) if with_training else 0,
                   "repeats": reps}
            for key in results[0]:
                vals = [r[key] for r in results]
                row[key] = float(np.mean(vals))
                if reps > 1:
                    row[key + "_sd"] = float(np.std(vals))
            curve.append(row)
            print(json.dumps(row), flush=True)

    # the same on the 50 training models as queries (population references only: none of them is a query): the
    # validation set on which choices are made, apart from the unseen models
    validation = []
    for n in [n for n in sizes if n >= 25]:
        reps = 1 if n == len(pop_ids) else args.repeats
        results = [score({}, {m: population[m] for m in (rng.choice(pop_ids, n, replace=False)
                                                         if n < len(pop_ids) else pop_ids)}, training_queries)
                   for _ in range(reps)]
        row = {"population_models": n, "repeats": reps} | {k: float(np.mean([r[k] for r in results]))
                                                            for k in results[0]}
        validation.append(row)
        print("validation", json.dumps(row), flush=True)

    # models x draws per model at a fixed simulation count (a quarter of the population's): population models
    # only, their 16 draws thinned to 8 or 4
    budget = len(pop_ids) // 4 * 16
    tradeoff = []
    for draws in (16, 8, 4):
        n_models = min(len(pop_ids), budget // draws)
        results = []
        for _ in range(args.repeats if n_models < len(pop_ids) else 1):
            pick = rng.choice(pop_ids, n_models, replace=False) if n_models < len(pop_ids) else pop_ids
            results.append(score({}, {m: thinned(population[m], 16 // draws) for m in pick}))
        row = {"draws_per_model": draws, "models": int(n_models), "simulations": int(n_models * draws)}
        row.update({k: float(np.mean([r[k] for r in results])) for k in results[0]})
        tradeoff.append(row)
        print(json.dumps(row), flush=True)

    result = {
        "what": "spike trains of the 10 unseen family models under their steps, from the blended trains of their "
                "3 nearest reference neurons in feature space, as the reference set grows",
        "checkpoint": Path(args.checkpoint).name, "data": Path(args.data).name,
        "population": [Path(p).name for p in args.population], "population_size": len(pop_ids),
        "feature_protocol": "train_draws_48 (the checkpoint's own; `add-references` default)",
        "window_ms": list(window), "curve": curve, "validation_training_models": validation,
        "draws_tradeoff": tradeoff,
        "wall_s": time.perf_counter() - t0, "machine": machine_info(),
        "command": "python benchmarks/learning_curve.py " + " ".join(Path(a).name if a.endswith(".h5") else a
                                                                     for a in sys.argv[1:]),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
