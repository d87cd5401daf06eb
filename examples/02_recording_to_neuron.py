"""From a recording to a surrogate neuron and its twins, in NEURON.

    python examples/02_recording_to_neuron.py            # ~40 s on 2 CPU cores; writes recording_to_neuron.png
    python examples/02_recording_to_neuron.py --quick    # 8 recorded steps (smoke test)

A recorded cell stands in here as hof_054, a family model the shipped checkpoint never trained on: its step sweeps
are simulated in NEURON and written to an NWB file, as a rig would write them. Then, as with a real recording:

1. ``noble-neuron measure`` (`measure_file`): its features on the checkpoint's protocol, its own step trains and,
   from the voltage, its own backbone and action potential -> ``SurrogateCell(neuron=...)``;
2. ``noble-neuron twins`` (`find_twins`): the population's neurons that respond as it does ->
   ``SurrogateCell.from_twins(...)``, and their detailed models;
3. all of them under a step the recording does not hold, beside the detailed cell, in one NEURON script.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from neuron import h

from noble_neuron import SurrogateCell
from noble_neuron.detailed.pv_family import get_model
from noble_neuron.features.spikes import spike_times
from noble_neuron.neuron.cell import resolve_surrogate
from noble_neuron.recordings.measure import measure_file
from noble_neuron.recordings.readers import read_sweeps, write_nwb
from noble_neuron.recordings.sweeps import StepSweeps
from noble_neuron.recordings.twins import detailed_twins, find_twins
from noble_neuron.surrogate.checkpoint import SHIPPED_CHECKPOINT

CELL = "hof_054"             # the "recorded" cell: an unseen model of the family
DELAY_MS, DUR_MS, TSTOP_MS, DT_MS = 15.0, 400.0, 515.0, 0.025
TEST_NA = 0.30               # a step the recording does not hold


def run(cell, amp_nA: float) -> np.ndarray:
    """Soma voltage (mV, DT_MS) of any cell under one step: ordinary NEURON."""
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = DELAY_MS, DUR_MS, amp_nA
    v = h.Vector().record(cell.soma(0.5)._ref_v, DT_MS)
    h.dt = DT_MS
    h.finitialize(-70.0)
    h.continuerun(TSTOP_MS)
    return v.as_numpy()[:int(round(TSTOP_MS / DT_MS))].copy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 recorded steps instead of 16")
    ap.add_argument("--out", default=str(Path(__file__).parent / "recording_to_neuron.png"))
    args = ap.parse_args()
    h.load_file("stdrun.hoc")
    h.celsius = 34.0

    # the "recording": 2 hyperpolarising steps and evenly spaced depolarising ones, written to NWB
    amps = np.r_[-0.1, -0.05, np.linspace(0.5 / (6 if args.quick else 14), 0.5, 6 if args.quick else 14)]
    detailed = get_model(CELL).instantiate()
    start = time.perf_counter()
    volt = np.array([run(detailed, a) for a in amps])
    t = np.arange(volt.shape[1]) * DT_MS
    stim = np.array([a * ((t >= DELAY_MS) & (t < DELAY_MS + DUR_MS)) for a in amps])
    tmp = Path(tempfile.mkdtemp())
    write_nwb(StepSweeps.from_traces(stim, volt, DT_MS, CELL), tmp / f"{CELL}.nwb")
    print(f"recorded {len(amps)} steps of {CELL} in {time.perf_counter() - start:.0f} s of NEURON -> {tmp / CELL}.nwb")

    # 1. measure it, 2. find its twins (the CLI's `noble-neuron measure` / `noble-neuron twins` do the same)
    start = time.perf_counter()
    s = resolve_surrogate(SHIPPED_CHECKPOINT)
    neuron = measure_file(s, tmp / f"{CELL}.json", recording=tmp / f"{CELL}.nwb")
    twins = find_twins(neuron, s, 10)
    print(f"measured and twinned in {time.perf_counter() - start:.1f} s: best twins {twins.ids[:3]}; detailed twins "
          f"with parameters: {len(detailed_twins(twins, s))}")
    assert read_sweeps(tmp / f"{CELL}.nwb").n_sweeps == len(amps)

    # 3. the same NEURON script for every cell
    true = run(detailed, TEST_NA)
    cells = {"measured surrogate (neuron=)": SurrogateCell(neuron=tmp / f"{CELL}.json"),
             f"best twin {twins.ids[0]} (from_twins)": SurrogateCell.from_twins(twins, n=1)[0],
             "from its features alone": SurrogateCell(CELL)}
    traces = {name: run(cell, TEST_NA) for name, cell in cells.items()}
    n_true = spike_times(true, DT_MS).size
    for name, v in traces.items():
        print(f"{name}: {spike_times(v, DT_MS).size} spikes (NEURON {n_true}), "
              f"RMSE {np.sqrt(np.mean((v - true) ** 2)):.1f} mV at {TEST_NA} nA")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(traces), 1, figsize=(10, 2.2 * len(traces)), sharex=True)
    for ax, (name, v) in zip(axes, traces.items()):
        ax.plot(t, true, color="0.3", lw=1.0, label=f"{CELL} detailed (NEURON)")
        ax.plot(t, v, color="tab:orange", lw=0.8, label=name)
        ax.set_xlim(DELAY_MS - 5, DELAY_MS + 150)
        ax.set_ylabel("mV")
        ax.legend(loc="upper right", frameon=False, fontsize=8)
    axes[-1].set_xlabel("time (ms)")
    fig.suptitle(f"{CELL} recorded on {len(amps)} steps; all cells at {TEST_NA} nA, a step not recorded")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
