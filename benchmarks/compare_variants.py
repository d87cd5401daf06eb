"""Collect trained variants into one comparison table (JSON + a markdown table on stdout).

Each variant is ``name=CHECKPOINT:REPORT_DIR``: a checkpoint trained by ``noble-neuron train`` and the
folder `benchmarks/accuracy.py --out-dir` wrote its accuracy.json to, all on the same data and budget.

    python benchmarks/compare_variants.py --out benchmarks/results/feature_sets.json \
        --what "feature sets, same data and 15 min budget" \
        noble2=noble_neuron/checkpoints/pv_fno_cpu.pt:runs/eval_noble2 rich=runs/rich.pt:runs/eval_rich
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (row label, accuracy.json key stem, format): ID and unseen values are shown side by side
ROWS = (
    ("spike-count error, firing traces", "spike_count_rel_error_firing", "{:.0%}"),
    ("spike counts exactly right", "spike_count_exact_match_rate", "{:.0%}"),
    ("firing mismatches", "firing_mismatch_rate", "{:.1%}"),
    ("FI mean abs error (Hz)", "fi_mean_abs_error_Hz", "{:.1f}"),
    ("spike timing, order-matched median (ms)", "spike_time_error_order_matched_median_ms", "{:.1f}"),
    ("Γ(±1 ms) median", "gamma_1ms_median", "{:.2f}"),
    ("rel L2", "rel_l2", "{:.0%}"),
    ("AP1_width error", "AP1_width_rel_error", "{:.0%}"),
    ("AHP depth error", "AHP_depth_rel_error", "{:.0%}"),
)
GROUPS = ("in_distribution", "unseen_models")


def _repo_relative(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def variant_figures(checkpoint: Path, report_dir: Path) -> dict:
    """The training facts of `checkpoint` and the accuracy figures of its report."""
    from noble_neuron.surrogate.checkpoint import load_surrogate

    s = load_surrogate(checkpoint, device="cpu")
    acc = json.loads((report_dir / "accuracy.json").read_text())
    m = s.metrics
    out = {"checkpoint": _repo_relative(checkpoint), "feature_names": list(s.config.feature_names),
           "epochs_done": m.get("epochs_done"), "train_wall_s": m.get("wall_s"), "n_parameters": m.get("n_parameters"),
           "schedule": (m.get("train_config") or {}).get("schedule", "plateau"),
           "val_event_loss_final": m.get("val_event_loss")}
    for _, stem, _ in ROWS:
        for g in GROUPS:
            out[f"{stem}_{g}"] = acc.get(f"{stem}_{g}")
    return out


def markdown(variants: dict[str, dict]) -> str:
    names = list(variants)
    lines = ["| figure (ID / unseen) | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|",
             "| epochs in the budget | " + " | ".join(str(variants[n]["epochs_done"]) for n in names) + " |"]
    for label, stem, fmt in ROWS:
        cells = []
        for n in names:
            vals = [variants[n].get(f"{stem}_{g}") for g in GROUPS]
            cells.append(" / ".join("–" if v is None else fmt.format(v) for v in vals))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="name=CHECKPOINT:REPORT_DIR")
    ap.add_argument("--out", required=True, help="JSON to write (under benchmarks/results/)")
    ap.add_argument("--what", required=True, help="what was compared, on which data and budget")
    ap.add_argument("--commands", default=None, help="JSON file {name: command} that produced each variant")
    args = ap.parse_args()

    from noble_neuron.evaluation.machine import machine_info

    variants = {}
    for spec in args.variants:
        name, _, paths = spec.partition("=")
        ckpt, _, report = paths.rpartition(":")
        if not (name and ckpt and report):
            raise SystemExit(f"variant {spec!r}: write name=CHECKPOINT:REPORT_DIR")
        variants[name] = variant_figures(Path(ckpt), Path(report))
    result = {"what": args.what, "variants": variants, "machine": machine_info()}
    if args.commands:
        result["commands"] = json.loads(Path(args.commands).read_text())
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(variants))


if __name__ == "__main__":
    main()
