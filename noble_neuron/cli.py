"""`noble-neuron` command line: thin subcommands over library functions."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

SEED_STRIDE = 10007  # --vary-seeds: seed offset per model index (a prime, so streams of nearby models never coincide)

__all__ = ["main", "load_cell_specs"]

log = logging.getLogger("noble_neuron.cli")


def load_cell_specs(models: str, template: str | None, template_name: str | None, mechanisms: str | None,
                    max_models: int | None = None):
    """(specs, splits) from 'family', 'family:train', 'family:unseen', a JSON file or a folder of JSONs.

    A user's model JSON is {"model_id": ..., "parameters": {...}} (or a list of those); a
    file/folder needs --template, --template-name and usually --mechanisms.
    """
    from .simulate import CellSpec

    if models.startswith("family"):
        from .models import load_family

        split = models.split(":", 1)[1] if ":" in models else None
        family = load_family(split=split)
        family = family[:max_models] if max_models else family
        return [m.cell_spec() for m in family], [m.split for m in family]
    path = Path(models)
    if not path.exists():
        raise FileNotFoundError(f"--models {models!r}: no such file or folder (or use 'family', 'family:train')")
    if template is None or template_name is None:
        raise ValueError("--models from a file needs --template <file.hoc> and --template-name <Name>")
    entries = []
    for f in sorted(path.glob("*.json")) if path.is_dir() else [path]:
        data = json.loads(f.read_text())
        entries += data if isinstance(data, list) else [data]
    specs, splits = [], []
    for e in entries[:max_models] if max_models else entries:
        if not isinstance(e, dict) or "parameters" not in e:
            raise ValueError(f"{models}: every model needs a 'parameters' mapping (and a 'model_id')")
        specs.append(CellSpec(model_id=str(e.get("model_id", f"model_{len(specs):03d}")), template_path=template,
                              template_name=template_name, mechanisms_dir=mechanisms, parameters=e["parameters"]))
        splits.append(e.get("split", "unknown"))
    return specs, splits


def _cmd_build_mechanisms(args) -> int:
    from .mechanisms import build_mechanisms

    print(build_mechanisms(args.mod_dir, force=True))
    return 0


def _cmd_build_family(args) -> int:
    from .models import FAMILY_DIR
    from .models.family_builder import build_family

    index = build_family(args.out or FAMILY_DIR, n_models=args.n_models, seed=args.seed,
                         generations=args.generations, n_candidates=args.candidates, n_workers=args.workers)
    print(f"wrote {len(index['splits'])} models ({index['procedure']['accepted']} accepted) to {args.out or FAMILY_DIR}")
    return 0


def _cmd_generate(args) -> int:
    from .datagen import generate
    from .feature_table import extract_features
    from .protocols import load_model_protocols

    specs, splits = load_cell_specs(args.models, args.template, args.template_name, args.mechanisms, args.max_models)
    protocols = load_model_protocols(args.protocol, len(specs))
    flat = [p for ps in protocols for p in ps] if isinstance(protocols[0], list) else protocols
    start = time.perf_counter()
    out = generate(specs, protocols, args.out, splits=splits, n_workers=args.workers, engine=args.engine,
                   sim_dt_ms=args.dt, downsample=args.downsample, progress=not args.no_progress,
                   overwrite=args.overwrite, seed_per_model=SEED_STRIDE if args.vary_seeds else 0)
    print(f"{out}: {len(specs)} models, {len(flat)} simulations in {time.perf_counter() - start:.1f} s")
    if not args.no_features and any(p.kind == "long_square" for p in flat):
        extract_features(out, progress=not args.no_progress)
    return 0


def _cmd_features(args) -> int:
    from .feature_table import copy_features, extract_features

    if args.copy_from:
        table = copy_features(args.copy_from, args.data)
    else:
        table = extract_features(args.data, progress=not args.no_progress)
    names = table["names"]
    for mid, row in zip(table["model_ids"], table["values"]):
        print(mid, {n: round(float(v), 4) for n, v in zip(names[:3], row[:3])})
    return 0


def _load_train_configs(config: str):
    """(SurrogateConfig, TrainConfig) from a preset name in noble_neuron/configs or a YAML file."""
    from .surrogate_model import SurrogateConfig
    from .train import TrainConfig

    path = Path(config)
    if not path.is_file():
        path = Path(__file__).parent / "configs" / f"{config}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"--config {config!r}: no such file and no preset of that name "
                                    f"(presets: {sorted(p.stem for p in path.parent.glob('*.yaml'))})")
    return SurrogateConfig.from_yaml(path), TrainConfig.from_yaml(path)


def _cmd_train(args) -> int:
    import dataclasses

    from .train import train

    model_cfg, train_cfg = _load_train_configs(args.config)
    if args.epochs is not None:
        train_cfg = dataclasses.replace(train_cfg, epochs=args.epochs)
    metrics = train(args.data, model_cfg, train_cfg, args.out, resume=not args.restart,
                    progress=not args.no_progress, max_minutes=args.max_minutes, device=args.device)
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    print(json.dumps(shown, indent=1))
    return 0


def _cmd_calibrate_spikes(args) -> int:
    from .train import calibrate_spikes

    print(json.dumps(calibrate_spikes(args.checkpoint, args.data, args.out), indent=1))
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluate import HEADLINE_KEYS, write_report

    result = write_report(args.checkpoint, args.data, args.out_dir, n_sampled=args.n_sampled,
                          progress=not args.no_progress, record=args.record)
    print(json.dumps({k: result[k] for k in HEADLINE_KEYS}, indent=1))
    print(f"wrote {Path(args.out_dir) / 'accuracy.json'} and PNGs")
    return 0


def _cmd_demo(args) -> int:
    """Main job on shipped defaults: simulate part of the family, write HDF5 + FI/spread PNGs."""
    import numpy as np

    from .datagen import generate
    from .feature_table import extract_features
    from .models import load_family
    from .plots import plot_feature_spread, plot_fi_curves
    from .protocols import load_protocols

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    family = load_family()
    chosen = [m for m in family if m.split == "train"][: args.n_models - 2] + [m for m in family if m.split == "unseen"][:2]
    protocols = load_protocols("demo")
    data = out_dir / "demo.h5"
    start = time.perf_counter()
    generate([m.cell_spec() for m in chosen], protocols, data, splits=[m.split for m in chosen],
             n_workers=args.workers, progress=not args.no_progress)
    wall = time.perf_counter() - start
    table = extract_features(data, progress=not args.no_progress)
    plot_fi_curves(table["fi_amps_nA"], table["fi_rates_Hz"], table["splits"], out_dir / "demo_fi_curves.png")
    col = {n: i for i, n in enumerate(table["names"])}
    plot_feature_spread(table["values"][:, col["I_thr_nA"]], table["values"][:, col["s_thr_Hz_per_nA"]],
                        table["splits"], out_dir / "demo_feature_spread.png")
    print(f"simulated {len(chosen)} models × {len(protocols)} Long Square steps in {wall:.1f} s → {data}")
    print(f"{'model':<9} {'split':<7} {'I_thr (pA)':>10} {'s_thr (Hz/nA)':>14} {'Rin (MOhm)':>11}")
    for mid, split, row in zip(table["model_ids"], table["splits"], table["values"]):
        print(f"{mid:<9} {split:<7} {row[col['I_thr_nA']] * 1e3:>10.0f} {row[col['s_thr_Hz_per_nA']]:>14.0f} "
              f"{row[col['input_resistance_MOhm']]:>11.0f}")
    print(f"figures: {out_dir / 'demo_fi_curves.png'}, {out_dir / 'demo_feature_spread.png'}")
    return 0 if np.isfinite(table["values"][:, col["I_thr_nA"]]).all() else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="noble-neuron", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("build-mechanisms", help="compile the .mod files (forced) into the cache")
    s.add_argument("--mod-dir", default=None, help="folder of .mod files (default: noble_neuron's mod/)")
    s.set_defaults(func=_cmd_build_mechanisms)

    s = sub.add_parser("build-family", help="(re)build the HoF family with BluePyOpt")
    s.add_argument("--out", default=None, help="output folder (default: the shipped family folder)")
    s.add_argument("--n-models", type=int, default=60)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--generations", type=int, default=6)
    s.add_argument("--candidates", type=int, default=240)
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=_cmd_build_family)

    s = sub.add_parser("generate", help="simulate models × protocols into an HDF5 dataset (resumable)")
    s.add_argument("--models", default="family", help="'family', 'family:train', 'family:unseen', or JSON file/folder")
    s.add_argument("--template", default=None, help="HoC template file (for --models from files)")
    s.add_argument("--template-name", default=None, help="template name inside the file")
    s.add_argument("--mechanisms", default=None, help="folder of .mod files used by the template")
    s.add_argument("--protocol", default="train", help="preset name (demo, train, heldout_amps, fi_fine, waveforms, "
                   "network; train_draws: 24 Long Square amplitudes drawn per model over -0.11 .. 0.5 nA, seeded by the "
                   "model's index) or YAML/JSON file")
    s.add_argument("--out", required=True, help="output .h5 (resumed if it exists)")
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    s.add_argument("--engine", default="pool", choices=["pool", "serial", "nrn-bb"],
                   help="pool: local processes; nrn-bb: NEURON ParallelContext (run under mpiexec)")
    s.add_argument("--dt", type=float, default=0.02, help="simulation dt (ms)")
    s.add_argument("--downsample", type=int, default=3, help="stored dt = dt × downsample")
    s.add_argument("--max-models", type=int, default=None)
    s.add_argument("--overwrite", action="store_true", help="replace an existing output instead of resuming")
    s.add_argument("--no-features", action="store_true", help="skip the per-model feature table")
    s.add_argument("--vary-seeds", action="store_true", help="every model gets its own noise/barrage waveforms "
                   f"(seed + {SEED_STRIDE} x model index) instead of the same ones")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_generate)

    s = sub.add_parser("features", help="compute/store the per-model feature table of a dataset")
    s.add_argument("--data", required=True)
    s.add_argument("--copy-from", default=None, help="take the features of the same models from this dataset or "
                   "checkpoint (.pt) instead of measuring them (for datasets without a Long Square grid)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_features)

    s = sub.add_parser("train", help="train the FNO surrogate on a dataset (resumable)")
    s.add_argument("--data", required=True, help="HDF5 dataset with a /features table")
    s.add_argument("--config", default="cpu_small", help="YAML with model:/train: sections, or preset "
                   "name (cpu_small, paper)")
    s.add_argument("--out", required=True, help="checkpoint to write (.pt); <out>.resume holds the resume state")
    s.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    s.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch crossing this budget")
    s.add_argument("--device", default=None, help="cpu / cuda (default: cuda when available)")
    s.add_argument("--restart", action="store_true", help="ignore an existing resume file")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("calibrate-spikes", help="re-calibrate a spike-head checkpoint's threshold, delay and "
                       "refractory period on its training dataset")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True, help="the dataset it was trained on (or another with the same models)")
    s.add_argument("--out", default=None, help="write here instead of in place")
    s.set_defaults(func=_cmd_calibrate_spikes)

    s = sub.add_parser("evaluate", help="accuracy of a checkpoint vs NEURON traces → accuracy.json + PNGs")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True, help="dataset with Long Square rows of train and unseen models")
    s.add_argument("--out-dir", default="benchmarks/results")
    s.add_argument("--n-sampled", type=int, default=50, help="neurons sampled inside the training-feature hull")
    s.add_argument("--record", action="store_true", help="store the headline figures in the checkpoint (SurrogateCell "
                   "then warns when they are far off)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("demo", help="main job on shipped defaults: simulate the family, FI-curve PNG")
    s.add_argument("--out-dir", default="runs/demo")
    s.add_argument("--n-models", type=int, default=8)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"noble-neuron {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
