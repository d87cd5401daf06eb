"""Accuracy of a surrogate checkpoint against NEURON traces (NOBLE's evaluation protocol).

    python benchmarks/accuracy.py --checkpoint noble_neuron/checkpoints/pv_cpu_small.pt --data pv_train.h5

Writes benchmarks/results/accuracy.json (rel_l2_in_distribution, rel_l2_unseen_models, spike-count
match, firing mismatches, spike-time, rheobase, FI and eFEL errors) and PNGs of predicted vs
NEURON traces, unseen-model FI curves, and FI curves of 50 neurons sampled inside the convex
hull of the training features against the HoF spread.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="dataset with Long Square rows of train + unseen models")
    ap.add_argument("--out-dir", default=str(RESULTS))
    ap.add_argument("--n-sampled", type=int, default=50, help="new neurons sampled (SurrogateCell.sample: population neurons, and in the feature hull)")
    ap.add_argument("--efel-limit", type=int, default=200)
    ap.add_argument("--record", action="store_true", help="store the headline figures in the checkpoint")
    args = ap.parse_args()

    from noble_neuron.evaluation.evaluate import HEADLINE_KEYS, write_report

    result = write_report(args.checkpoint, args.data, args.out_dir, n_sampled=args.n_sampled,
                          efel_limit=args.efel_limit, record=args.record)
    # the figures carry the command that produced them (the dataset by its file name: datasets are not committed)
    args_text = " ".join(Path(a).name if Path(a).suffix == ".h5" else a for a in sys.argv[1:])
    result["command"] = f"python benchmarks/accuracy.py {args_text}"
    (Path(args.out_dir) / "accuracy.json").write_text(json.dumps(result, indent=1) + "\n")
    sampled = Path(args.out_dir) / "sampled_neurons.json"
    sampled.write_text(json.dumps(json.loads(sampled.read_text()) | {"command": result["command"]}, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in HEADLINE_KEYS}, indent=1))


if __name__ == "__main__":
    main()
