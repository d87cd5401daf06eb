"""`noble-neuron` command line: thin subcommands over library functions."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from .detailed.selection import load_cell_specs, parse_template_args  # the --models loader, re-exported

SEED_STRIDE = 10007  # --vary-seeds: seed offset per model index (a prime, so streams of nearby models never coincide)

__all__ = ["main", "load_cell_specs"]

log = logging.getLogger("noble_neuron.cli")


def _positive_count(text: str) -> int:
    """argparse type: an integer >= 1 (0 or a negative number would otherwise mean "no limit")."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {n}); leave the option out to use every model")
    return n


def _cmd_build_mechanisms(args) -> int:
    from .detailed.mechanisms import build_mechanisms

    print(build_mechanisms(args.mod_dir, force=True))
    return 0


def _cmd_build_population(args) -> int:
    from .detailed.pv_family.population import POPULATION_FILE, build_population

    index = build_population(args.out, n_models=args.n_models, seed=args.seed, spread=args.spread,
                             exclusion=args.exclusion, n_workers=args.workers, first_id=args.first_id)
    proc = index["procedure"]
    print(f"wrote {len(index['models'])} models ({proc['candidates']} candidates, refused {proc['refused']}) to "
          f"{Path(args.out) / POPULATION_FILE}; simulate them with `noble-neuron generate --models "
          f"{Path(args.out) / POPULATION_FILE} --protocol population_draws --out population.h5`")
    return 0


def _cmd_build_family(args) -> int:
    from .detailed.pv_family import FAMILY_DIR
    from .detailed.pv_family.family_builder import build_family

    index = build_family(args.out or FAMILY_DIR, n_models=args.n_models, seed=args.seed,
                         generations=args.generations, n_candidates=args.candidates, n_workers=args.workers)
    print(f"wrote {len(index['splits'])} models ({index['procedure']['accepted']} accepted) to {args.out or FAMILY_DIR}")
    return 0


def _specs_and_splits(args):
    from .detailed.spec import assign_splits

    specs, splits = load_cell_specs(args.models, args.template, args.template_name, args.mechanisms, args.max_models,
                                    parse_template_args(args.template_args), args.preload)
    return specs, assign_splits([s.model_id for s in specs], splits, unseen=args.unseen,
                                unseen_fraction=args.unseen_fraction, seed=args.split_seed)


def _cmd_build_surrogate(args) -> int:
    from .pipeline import build_surrogate
    from .stimuli.presets import load_model_protocols

    specs, splits = _specs_and_splits(args)
    protocols = load_model_protocols(args.protocol, len(specs))
    summary = build_surrogate(specs, splits, args.out_dir, protocols=protocols, v_init=args.v_init, config=args.config,
                              epochs=args.epochs, max_minutes=args.max_minutes, engine=args.engine,
                              n_workers=args.workers, device=args.device, progress=not args.no_progress)
    print(json.dumps({k: summary[k] for k in ("models", "splits", "stage_wall_s", "headline")}, indent=1))
    print(f"report: {Path(args.out_dir) / summary['report']}; use it with {summary['usage']}")
    return 0


def _cmd_generate(args) -> int:
    from .simulation.datagen import generate
    from .features.table import extract_features
    from .stimuli.presets import load_model_protocols
    from .data.dataset import open_dataset

    specs, splits = _specs_and_splits(args)
    protocols = load_model_protocols(args.protocol, len(specs))
    start = time.perf_counter()
    out = generate(specs, protocols, args.out, splits=splits, n_workers=args.workers, engine=args.engine,
                   sim_dt_ms=args.dt, downsample=args.downsample, progress=not args.no_progress,
                   overwrite=args.overwrite, seed_per_model=SEED_STRIDE if args.vary_seeds else 0,
                   v_init=args.v_init, **({} if args.sim_timeout is None else {"sim_timeout_s": args.sim_timeout or None}))
    ds = open_dataset(out)
    print(f"{out}: {len(specs)} models ({ds.model_splits.count('train')} train, {ds.model_splits.count('unseen')} "
          f"unseen), {len(ds.done)} simulations in {time.perf_counter() - start:.1f} s")
    kinds = set(ds.protocol_kinds())
    if not args.no_features and "long_square" in kinds:
        extract_features(out, progress=not args.no_progress)
    return 0


def _cmd_features(args) -> int:
    from .data.dataset import open_dataset
    from .features.table import copy_features, extract_features, pin_features

    if args.copy_from and Path(args.copy_from).suffix == ".pt":
        from .surrogate.checkpoint import load_surrogate

        s = load_surrogate(args.copy_from, device="cpu")
        names = list(s.config.feature_names)
        pinned = {m: [v[n] for n in names] for m, v in s.model_features.items()}
        if "long_square" in open_dataset(args.data).protocol_kinds():
            extract_features(args.data, progress=not args.no_progress)
            table = pin_features(args.data, names, pinned)
        else:
            table = copy_features(args.copy_from, args.data, names=names, table=pinned)
    elif args.copy_from:
        table = copy_features(args.copy_from, args.data)
    else:
        table = extract_features(args.data, progress=not args.no_progress)
    names = table["names"]
    for mid, row in zip(table["model_ids"], table["values"]):
        print(mid, {n: round(float(v), 4) for n, v in zip(names[:3], row[:3])})
    return 0


def _cmd_fit_dendrite_loads(args) -> int:
    from .detailed.pv_family import load_family
    from .simulation.dendrite_load import SHIPPED_LOADS, fit_family_loads

    models = args.models or [m.model_id for m in load_family()]
    try:
        loads = fit_family_loads(models, args.out or SHIPPED_LOADS, workers=args.workers)
    except (ValueError, KeyError) as err:
        raise SystemExit(f"noble-neuron fit-dendrite-loads: {err}")
    worst = max(loads.values(), key=lambda x: x.fit_rms_pA)
    print(f"fitted {len(loads)} dendritic loads (worst residual {worst.fit_rms_pA:.1f} pA, {worst.model_id}); "
          f"wrote {args.out or SHIPPED_LOADS}")
    return 0


def _cmd_fit_gif(args) -> int:
    from .baselines.gif import SHIPPED_GIF_FITS
    from .baselines.gif_family import fit_family_gif
    from .detailed.pv_family import load_family

    models = args.models or [m.model_id for m in load_family()]
    fits = fit_family_gif(models, args.out or SHIPPED_GIF_FITS, workers=args.workers, report=args.report)
    print(f"fitted {len(fits)} GIFs; wrote {args.out or SHIPPED_GIF_FITS}"
          + (f" and {args.report}" if args.report else ""))
    return 0


def _cmd_fit_adex(args) -> int:
    import json

    from .baselines.adex import save_fits
    from .baselines.fit_family import fit_dataset, held_out_summary
    from .evaluation.machine import machine_info

    out = Path(args.out)
    if out.is_dir():
        raise SystemExit(f"noble-neuron fit-adex: --out {out} is a folder; give a .json file name")
    results = fit_dataset(args.data, args.models, workers=args.workers, progress=not args.no_progress)
    summary = held_out_summary({m: r["held_out"] for m, r in results.items()})
    provenance = {"data": Path(args.data).name, "command": " ".join(["noble-neuron fit-adex --data", Path(args.data).name,
                  "--out", out.name] + (["--report", Path(args.report).name] if args.report else [])),
                  "held_out_median": summary,
                  "held_out": {m: {k: [round(float(x), 4) for x in v] if k != "kinds" else v
                                   for k, v in r["held_out"].items()} for m, r in results.items()},
                  "stage1": {m: r["stage1"] for m, r in results.items()}}
    save_fits({m: r["params"] for m, r in results.items()}, out, provenance)
    print(f"held-out traces, median: {summary['all']}\nwrote {out}")
    if args.report:
        Path(args.report).write_text(json.dumps({"machine": machine_info(), "command": provenance["command"],
                                                 "fits": out.name, "held_out": summary}, indent=1))
        print(f"wrote {args.report}")
    return 0


def _cmd_train(args) -> int:
    import dataclasses

    from .training.train import train

    from .pipeline import load_train_configs

    model_cfg, train_cfg = load_train_configs(args.config)
    if args.epochs is not None:
        train_cfg = dataclasses.replace(train_cfg, epochs=args.epochs)
    metrics = train(args.data, model_cfg, train_cfg, args.out, resume=not args.restart,
                    progress=not args.no_progress, max_minutes=args.max_minutes, device=args.device)
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    print(json.dumps(shown, indent=1))
    return 0


def _cmd_fit_backbone(args) -> int:
    from .training.backbones import add_backbones

    path = add_backbones(args.checkpoint, args.data, args.out)
    print(f"wrote {path} with the physics backbone of each training model")
    return 0


def _cmd_add_references(args) -> int:
    from .surrogate.checkpoint import load_surrogate
    from .training.references import add_references

    protocol = None if args.feature_protocol == "dataset" else args.feature_protocol
    path = add_references(args.checkpoint, args.data, args.out, replace=args.replace, feature_protocol=protocol)
    n = len(load_surrogate(path).references)
    print(f"wrote {path} with {n} reference neurons (neurons given by features borrow their step trains)")
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluation.evaluate import HEADLINE_KEYS, write_report

    out_dir = Path(args.out_dir) if args.out_dir else Path.cwd() / f"{Path(args.checkpoint).stem}_evaluation"
    if (out_dir / "accuracy.json").exists() and not args.overwrite:
        raise ValueError(f"{out_dir / 'accuracy.json'} exists (an earlier evaluation, or the repository's shipped "
                         "results); pass --overwrite to replace it, or another --out-dir")
    result = write_report(args.checkpoint, args.data, out_dir, n_sampled=args.n_sampled,
                          progress=not args.no_progress, record=args.record)
    print(json.dumps({k: result[k] for k in HEADLINE_KEYS}, indent=1))
    print(f"wrote {out_dir / 'accuracy.json'} and PNGs")
    return 0


def _cmd_demo(args) -> int:
    """Main job on shipped defaults: simulate part of the family, write HDF5 + FI/spread PNGs."""
    import numpy as np

    from .simulation.datagen import generate
    from .features.table import extract_features
    from .detailed.pv_family import load_family
    from .evaluation.plots import plot_feature_spread, plot_fi_curves
    from .stimuli.presets import load_protocols

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


def _model_arguments(s, default_protocol: str, default_v_init: str) -> None:
    """The options naming the detailed models, their split, initial voltage and protocols."""
    s.add_argument("--models", default="family", help="'family', 'family:train', 'family:unseen', or a model JSON "
                   "file/folder (see docs/own_model.md)")
    s.add_argument("--template", default=None, help="HoC template file (or a loader file that load_files it)")
    s.add_argument("--template-name", default=None, help="template name inside the file")
    s.add_argument("--mechanisms", default=None, help="folder of .mod files used by the template (any folder)")
    s.add_argument("--template-args", nargs="+", default=None, metavar="ARG",
                   help="constructor arguments of the template, e.g. its morphology file (numbers → $1, text → $s1)")
    s.add_argument("--preload", nargs="+", default=None, metavar="HOC",
                   help="hoc files to load before the template, in order (e.g. import3d.hoc biophysics.hoc)")
    s.add_argument("--unseen", nargs="+", default=None, metavar="ID",
                   help="hold these models out of training (split 'unseen'); the others are 'train'")
    s.add_argument("--unseen-fraction", type=float, default=None,
                   help="hold out this fraction of the models, drawn with --split-seed")
    s.add_argument("--split-seed", type=int, default=0)
    s.add_argument("--v-init", default=default_v_init, help="initial voltage: 'template' (hoc's v_init), 'auto' (each "
                   f"model's resting potential, found by a pre-run and stored), or mV (default {default_v_init})")
    s.add_argument("--protocol", default=default_protocol, help="preset name (demo, train, heldout_amps, fi_fine, "
                   "waveforms, network; train_draws: 24 Long Square amplitudes drawn per model over -0.11 .. 0.5 nA, "
                   "train_draws_48: 48 of them; population_draws: 16 of them; "
                   "adaptive: 24 amplitudes per model over -0.5 .. 3 x its own rheobase, found by a search first) or "
                   f"YAML/JSON file (default {default_protocol})")
    s.add_argument("--max-models", type=_positive_count, default=None, help="only the first N models (N >= 1)")
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    s.add_argument("--sim-timeout", type=float, default=None, metavar="SECONDS",
                   help="stop when no simulation finishes for this long per simulation (a template that never "
                        "returns; default 900; 0 waits forever; the pool engine only)")
    s.add_argument("--engine", default="pool", choices=["pool", "serial", "nrn-bb"],
                   help="pool: local processes; nrn-bb: NEURON ParallelContext (run under mpiexec -n N)")


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

    s = sub.add_parser("build-population", help="acceptance-sample a training population of PV parameter sets "
                       "around the family's training models (none near a held-out model) → population.json")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--n-models", type=_positive_count, default=200)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--spread", type=float, default=0.25, help="s.d. of the log-normal perturbation")
    s.add_argument("--exclusion", type=float, default=0.45,
                   help="refuse candidates closer than this to a held-out model (normalised parameter units)")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--first-id", type=int, default=0, help="number the models pop_NNNN from here (another seed's "
                   "population: its --n-models)")
    s.set_defaults(func=_cmd_build_population)

    s = sub.add_parser("generate", help="simulate models × protocols into an HDF5 dataset (resumable)")
    _model_arguments(s, default_protocol="train", default_v_init="template")
    s.add_argument("--out", required=True, help="output .h5 (resumed if it exists)")
    s.add_argument("--dt", type=float, default=0.02, help="simulation dt (ms)")
    s.add_argument("--downsample", type=int, default=3, help="stored dt = dt × downsample")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output instead of resuming")
    s.add_argument("--no-features", action="store_true", help="skip the per-model feature table")
    s.add_argument("--vary-seeds", action="store_true", help="every model gets its own noise/barrage waveforms "
                   f"(seed + {SEED_STRIDE} x model index) instead of the same ones")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_generate)

    s = sub.add_parser("build-surrogate", help="the whole pipeline on your model, resumable: generate → features → "
                       "train → evaluate; writes data.h5, surrogate.pt, report/ and pipeline.json into --out-dir")
    _model_arguments(s, default_protocol="adaptive", default_v_init="auto")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--config", default="wt_phase_smooth_amp", help="training preset or YAML (default: the shipped "
                   "whole-trace recipe)")
    s.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    s.add_argument("--max-minutes", type=float, default=15.0, help="training budget (default 15)")
    s.add_argument("--device", default=None, help="cpu / cuda (default: cuda when available)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_build_surrogate)

    s = sub.add_parser("features", help="compute/store the per-model feature table of a dataset")
    s.add_argument("--data", required=True)
    s.add_argument("--copy-from", default=None, help="take the features of the same models from this dataset or "
                   "checkpoint (.pt) instead of measuring them (for datasets without a Long Square grid); from a "
                   "checkpoint, a dataset with Long Squares is measured and the checkpoint's features pinned over it")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_features)

    s = sub.add_parser("fit-adex", help="fit the AdEx baseline to every model of a streaming-preset dataset → JSON")
    s.add_argument("--data", required=True, help="a dataset made with --protocol streaming")
    s.add_argument("--out", required=True, help="the .json file of fitted parameters")
    s.add_argument("--models", nargs="+", default=None, help="model ids (default: every model of the dataset)")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--report", default=None, help="also write the held-out figures (medians, per stimulus kind) "
                   "with machine info to this JSON (e.g. benchmarks/results/adex_fits.json)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_fit_adex)

    s = sub.add_parser("fit-dendrite-loads", help="fit the dendritic loads of HybridCell network cells "
                       "(family models; the shipped fits by default) → JSON")
    s.add_argument("--out", default=None, help="the .json file (default: the shipped "
                   "noble_neuron/detailed/pv_family/dendrite_loads.json)")
    s.add_argument("--models", nargs="+", default=None, help="family model ids (default: all 60)")
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(func=_cmd_fit_dendrite_loads)

    s = sub.add_parser("fit-gif", help="fit the GIF baseline (Pozzorini et al. 2015) to family models on their "
                       "OU-current responses (the shipped fits by default) → JSON")
    s.add_argument("--out", default=None, help="the .json file (default: noble_neuron/baselines/pv_family_gif.json)")
    s.add_argument("--models", nargs="+", default=None, help="family model ids (default: all 60)")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--report", default=None, help="also write the held-out figures with machine info to this JSON "
                   "(e.g. benchmarks/results/gif_fits.json)")
    s.set_defaults(func=_cmd_fit_gif)

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

    s = sub.add_parser("fit-backbone", help="give a trained whole-trace checkpoint each training model's physics "
                       "backbone (linear response, interspike trajectories), fitted on its training steps")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True, help="the dataset the checkpoint was trained on")
    s.add_argument("--out", default=None, help="checkpoint to write (default: in place)")
    s.set_defaults(func=_cmd_fit_backbone)

    s = sub.add_parser("add-references", help="store the step trains of a population's models (not trained on) in "
                       "a whole-trace checkpoint: neurons given by features borrow them from their nearest neighbours")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True, nargs="+", help="dataset(s) with a feature table (`noble-neuron features`)")
    s.add_argument("--out", default=None, help="checkpoint to write (default: in place)")
    s.add_argument("--replace", action="store_true", help="drop the reference neurons already stored")
    s.add_argument("--feature-protocol", required=True, help="the per-model preset the checkpoint's own features were "
                   "measured on (the shipped checkpoint's: train_draws_48), on which the references' features are "
                   "measured too (features depend on the protocol: docs/surrogate.md); 'dataset': as the dataset's "
                   "feature table has them, when both were simulated on the same protocol")
    s.set_defaults(func=_cmd_add_references)

    from .recordings.commands import add_recording_commands

    add_recording_commands(sub)  # measure, twins

    s = sub.add_parser("evaluate", help="accuracy of a checkpoint vs NEURON traces → accuracy.json + PNGs")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True, help="dataset with Long Square rows of train and unseen models")
    s.add_argument("--out-dir", default=None, help="default: <checkpoint name>_evaluation/ in the current folder")
    s.add_argument("--overwrite", action="store_true", help="replace an accuracy.json already in --out-dir")
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


#: what an interrupted command keeps (Ctrl-C, or SIGINT from a scheduler)
RESUMABLE = {
    "generate": "every finished simulation is kept (journal): run the same command again to resume; the dataset "
                "comes out bit-identical to an uninterrupted run",
    "train": "every finished epoch is kept (<out>.resume): run the same command again to continue from the last "
             "one (--restart starts over)",
    "build-surrogate": "finished stages are kept: run the same command again to continue where it stopped",
}


def _run(args) -> int:
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"noble-neuron {args.command}: error: {exc}", file=sys.stderr)
        if "no space left on device" in str(exc):
            # HDF5 still holds writes the full disk refused: closing them at exit prints a dozen tracebacks and
            # crashes (SIGSEGV). Everything finished is in the journal already, so leave without closing them.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        return 2
    except KeyboardInterrupt:
        kept = RESUMABLE.get(args.command, "nothing it was writing is marked finished")
        print(f"\nnoble-neuron {args.command}: interrupted; {kept}", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    rc = _run(args)
    if getattr(args, "engine", None) == "nrn-bb":
        from neuron import h

        if h.ParallelContext().nhost() > 1:
            sys.stdout.flush()
            sys.stderr.flush()
            h.quit(rc)  # finalises MPI on every rank (a plain exit aborts the mpiexec job)
    return rc


if __name__ == "__main__":
    sys.exit(main())
