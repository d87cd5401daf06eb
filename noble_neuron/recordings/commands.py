"""The ``noble-neuron measure`` and ``noble-neuron twins`` subcommands: thin shells over `measure` and `twins`."""
from __future__ import annotations

import warnings

__all__ = ["add_recording_commands"]

STIMULUS_HELP = ("NWB only: the sweeps whose stimulus description contains this (e.g. 'Long Square' in an Allen Cell "
                 "Types file); default all current-clamp sweeps")


def add_recording_commands(sub) -> None:
    """Register ``measure`` and ``twins`` on an argparse subparsers object."""
    s = sub.add_parser("measure", help="a neuron's step sweeps measured for a whole-trace checkpoint: features on its "
                       "protocol, trains and, with voltage, its own backbone -> JSON for SurrogateCell(neuron=...)")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--recording", default=None, help=".nwb, a neo-readable file (voltage and current signals), or a "
                   ".csv with columns amp_nA|amp_pA, delay_ms, dur_ms, spike_times_ms")
    s.add_argument("--data", default=None, help="a dataset of a detailed model's steps (noble-neuron generate)")
    s.add_argument("--model-id", default=None, help="the model of --data to measure")
    s.add_argument("--out", required=True, help="the measured neuron's JSON file")
    s.add_argument("--feature-protocol", default="checkpoint", help="'checkpoint' (its reference neurons'; default), "
                   "a per-model preset, or 'sweeps' (the sweeps' own amplitudes, as a dataset's feature table)")
    s.add_argument("--no-own-cell", action="store_true", help="do not fit its own backbone and action potential")
    s.add_argument("--stimulus", default=None, help=STIMULUS_HELP)
    s.set_defaults(func=_cmd_measure)

    s = sub.add_parser("twins", help="the neurons of a checkpoint's population that respond as a recording does "
                       "(its twins, best first, with how much the recording constrains each feature) -> JSON + PNG")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--recording", required=True, help="as for measure (.nwb, neo-readable, .csv of spike times)")
    s.add_argument("--n", type=int, default=50, help="how many twins (default 50)")
    s.add_argument("--out", required=True, help="folder for twins.json, twins.png and twins_models.json")
    s.add_argument("--stimulus", default=None, help=STIMULUS_HELP)
    s.set_defaults(func=_cmd_twins)


def _measure_sources(args) -> None:
    if (args.recording is None) == (getattr(args, "data", None) is None) or \
            (getattr(args, "data", None) is not None) != (getattr(args, "model_id", None) is not None):
        raise SystemExit("measure needs --recording FILE, or --data DATASET with --model-id ID")


def _cmd_measure(args) -> int:
    from .measure import measure_file

    _measure_sources(args)
    protocol = {"checkpoint": "checkpoint", "sweeps": None}.get(args.feature_protocol, args.feature_protocol)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        neuron = measure_file(args.checkpoint, args.out, recording=args.recording, data=args.data,
                              model_id=args.model_id, feature_protocol=protocol, own_cell=not args.no_own_cell,
                              stimulus=args.stimulus)
    for w in caught:
        print(f"warning: {w.message}")
    print(f"{neuron.source}: " + ", ".join(f"{k} {v:.4g}" for k, v in neuron.features.items()))
    print(f"wrote {args.out}" + (" (with its own backbone and action potential)" if neuron.cell is not None else
                                 " (trains and features; no voltage-fitted backbone)")
          + f"; use it as SurrogateCell(neuron='{args.out}', checkpoint='{args.checkpoint}')")
    return 0


def _cmd_twins(args) -> int:
    import time
    from pathlib import Path

    from ..surrogate.checkpoint import load_surrogate
    from .measure import measure_neuron
    from .plots import plot_twins
    from .readers import read_sweeps
    from .twins import detailed_twins, find_twins, write_model_file

    start = time.perf_counter()
    s = load_surrogate(args.checkpoint, device="cpu")
    sweeps = read_sweeps(args.recording, args.stimulus)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        neuron = measure_neuron(sweeps, s, own_cell=False)
    twins = find_twins(neuron, s, args.n)
    twins.checkpoint = Path(args.checkpoint).name
    out = Path(args.out)
    twins.save(out / "twins.json")
    plot_twins(neuron, twins, s, out / "twins.png")
    detailed = detailed_twins(twins, s)
    if detailed:
        write_model_file(detailed, out / "twins_models.json")
        print(f"{len(detailed)} detailed twins in {out / 'twins_models.json'}: simulate them with noble-neuron "
              f"generate --models {out / 'twins_models.json'} --protocol <steps> --out twins.h5")
    for w in caught:
        print(f"warning: {w.message}")
    pinned = sorted((v, k) for k, v in twins.spread.items() if v is not None)
    print(f"{sweeps.source}: {len(twins.ids)} twins in {time.perf_counter() - start:.1f} s, best {twins.ids[0]} "
          f"(distance {twins.distances[0]:.2f}); most constrained: "
          + ", ".join(f"{k} ({v:.2f} of the population's spread)" for v, k in pinned[:3]))
    print(f"wrote {out / 'twins.json'} and {out / 'twins.png'}; use them as "
          f"SurrogateCell.from_twins('{out / 'twins.json'}', checkpoint='{args.checkpoint}')")
    return 0
