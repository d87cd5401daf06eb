"""Reading a cell's step sweeps from files: NWB (``pynwb``), anything ``neo`` reads (ABF, Axograph, WinWCP, ...;
``neo.io.get_io``) and a plain table of spike times (CSV). And writing NWB, for synthetic recordings.

Every reader returns one `StepSweeps` in nA, mV and ms, and refuses what it cannot read unambiguously with an error
that names the problem and the fix: no stimulus, units it does not know, sampling rates that differ, sweeps that are
not one step, a file without a single spike.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .sweeps import StepSweeps

__all__ = ["read_sweeps", "read_nwb", "read_neo", "read_spike_table", "sweeps_from_dataset", "write_nwb",
           "TABLE_COLUMNS"]

#: units a recording's voltage / current may be in, and the factor to mV / nA
VOLTAGE_UNITS = {"volts": 1e3, "volt": 1e3, "v": 1e3, "mv": 1.0, "millivolts": 1.0, "uv": 1e-3, "microvolts": 1e-3}
CURRENT_UNITS = {"amperes": 1e9, "ampere": 1e9, "a": 1e9, "na": 1.0, "nanoamperes": 1.0, "pa": 1e-3,
                 "picoamperes": 1e-3, "ua": 1e3, "microamperes": 1e3}
#: the spike-time table: one row per sweep; the amplitude in nA or pA (column name says which)
TABLE_COLUMNS = ("amp_nA | amp_pA", "delay_ms", "dur_ms", "spike_times_ms (space-separated, ms from the sweep's start)")


def read_sweeps(path: str | Path, stimulus: str | None = None) -> StepSweeps:
    """The step sweeps of the recording `path`, by its suffix: ``.nwb`` (`read_nwb`), ``.csv``/``.tsv``
    (`read_spike_table`), anything else through neo (`read_neo`); at least one must fire during its step. Spikes
    are found by the package's one detector (`features.spikes`, `constants.SPIKE_THRESHOLD_MV`), as on the
    checkpoint's own training traces. `stimulus`: only the NWB sweeps whose stimulus description contains it
    (e.g. "Long Square" in an Allen Cell Types file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recording at {path}")
    suffix = path.suffix.lower()
    if stimulus is not None and suffix != ".nwb":
        raise ValueError(f"{path}: selecting sweeps by stimulus description works for NWB files only; give a file "
                         "of the step sweeps alone")
    sweeps = (read_nwb(path, stimulus) if suffix == ".nwb" else read_spike_table(path)
              if suffix in (".csv", ".tsv") else read_neo(path))
    end = sweeps.delay_ms + sweeps.dur_ms
    if not any(((t >= sweeps.delay_ms) & (t < end)).any() for t in sweeps.spikes_ms):
        raise ValueError(f"{path}: no sweep has a spike during its step (threshold crossings of the voltage); a "
                         "neuron cannot be measured from subthreshold sweeps alone: include steps above its rheobase "
                         "(or check the voltage units)")
    return sweeps


def _factor(unit: str, table: dict[str, float], what: str, where: str) -> float:
    key = str(unit).strip().lower().replace(" ", "")
    if key not in table:
        raise ValueError(f"{where}: unknown {what} unit {unit!r}; expected one of {sorted(set(table))} (convert the "
                         "file, or fix its unit attribute)")
    return table[key]


def _pair_by_sweep(responses: list, stimuli: list, where: str) -> list[tuple]:
    """(response, stimulus) pairs: by sweep number where every series has one, else in order."""
    numbers = [getattr(s, "sweep_number", None) for s in responses + stimuli]
    if all(n is not None for n in numbers):
        by_number = {int(s.sweep_number): s for s in stimuli}
        missing = [int(r.sweep_number) for r in responses if int(r.sweep_number) not in by_number]
        if missing:
            raise ValueError(f"{where}: sweeps {missing[:5]} have a voltage but no stimulus series; every "
                             "CurrentClampSeries needs its CurrentClampStimulusSeries (same sweep_number)")
        return [(r, by_number[int(r.sweep_number)]) for r in responses]
    if len(responses) != len(stimuli):
        raise ValueError(f"{where}: {len(responses)} voltage series but {len(stimuli)} stimulus series, and no "
                         "sweep numbers to pair them; store the sweep_number of each series")
    return list(zip(responses, stimuli))


def read_nwb(path: str | Path, stimulus: str | None = None) -> StepSweeps:
    """Step sweeps from an NWB file: its CurrentClampSeries (acquisition) and CurrentClampStimulusSeries
    (stimulus), paired by sweep number (else in order), in the series' units times their conversion; with
    `stimulus`, only the pairs whose stimulus description contains it (case-insensitive)."""
    from pynwb import NWBHDF5IO
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries, IZeroClampSeries

    where = str(path)
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        responses = [s for s in nwb.acquisition.values()
                     if isinstance(s, CurrentClampSeries) and not isinstance(s, IZeroClampSeries)]
        stimuli = [s for s in nwb.stimulus.values() if isinstance(s, CurrentClampStimulusSeries)]
        if not responses:
            raise ValueError(f"{where}: no CurrentClampSeries in its acquisition; only current-clamp sweeps can be "
                             "measured")
        if not stimuli:
            raise ValueError(f"{where}: no stimulus (CurrentClampStimulusSeries) for its sweeps; without the injected "
                             "current the step amplitudes are unknown: add the stimulus series, or give the sweeps "
                             "as a table of amplitudes and spike times (.csv)")
        pairs = _pair_by_sweep(responses, stimuli, where)
        if stimulus is not None:
            pairs = [(r, st) for r, st in pairs if stimulus.lower() in " ".join(
                str(getattr(x, "stimulus_description", "") or "") for x in (r, st)).lower()]
            if not pairs:
                raise ValueError(f"{where}: no sweep's stimulus description contains {stimulus!r}")
        stim_rows, volt_rows, rate = [], [], None
        for response, stimulus_series in pairs:
            label = f"{where} ({response.name})"
            if response.rate is None or stimulus_series.rate is None:
                raise ValueError(f"{label}: sampled at irregular timestamps, not at a rate; resample the sweep onto a "
                                 "regular grid first")
            r_rate, s_rate = float(response.rate), float(stimulus_series.rate)
            if abs(r_rate - s_rate) > 1e-6 * r_rate:
                raise ValueError(f"{label}: the voltage is sampled at {r_rate:g} Hz but its stimulus at {s_rate:g} Hz; "
                                 "resample one of them so each sweep has one sampling rate")
            if rate is not None and abs(r_rate - rate) > 1e-6 * rate:
                raise ValueError(f"{label}: sampled at {r_rate:g} Hz, other sweeps at {rate:g} Hz; measure sweeps of "
                                 "one sampling rate together (resample, or split the file)")
            rate = r_rate
            v = np.asarray(response.data[:], float) * float(response.conversion) + float(getattr(response, "offset", 0.0))
            i = (np.asarray(stimulus_series.data[:], float) * float(stimulus_series.conversion)
                 + float(getattr(stimulus_series, "offset", 0.0)))
            v *= _factor(response.unit, VOLTAGE_UNITS, "voltage", label)
            i *= _factor(stimulus_series.unit, CURRENT_UNITS, "current", label)
            n = min(v.size, i.size)
            volt_rows.append(v[:n])
            stim_rows.append(i[:n])
    n = min(r.size for r in volt_rows)
    return StepSweeps.from_traces(np.stack([r[:n] for r in stim_rows]), np.stack([r[:n] for r in volt_rows]),
                                  1000.0 / rate, source=Path(path).name)


def _signal_kind(sig) -> tuple[str | None, float]:
    unit = sig.units.dimensionality.string.lower()
    if unit in VOLTAGE_UNITS:
        return "voltage", VOLTAGE_UNITS[unit]
    if unit in CURRENT_UNITS:
        return "current", CURRENT_UNITS[unit]
    return None, 0.0


def read_neo(path: str | Path) -> StepSweeps:
    """Step sweeps from any file neo reads (``neo.io.get_io``: ABF, Axograph, WinWCP, Igor, NeoMatlab, ...):
    one segment per sweep holding a voltage signal (V/mV) and the injected current (A/nA/pA) as signals."""
    import neo

    where = str(path)
    try:
        io = neo.io.get_io(str(path))
    except (IOError, OSError, ValueError) as exc:
        raise ValueError(f"{where}: neo cannot read this format ({exc}); convert it to NWB or give the sweeps as a "
                         "table of amplitudes and spike times (.csv)") from None
    stim_rows, volt_rows, rate = [], [], None
    for seg in (s for b in io.read(lazy=False) for s in b.segments):
        found: dict[str, tuple] = {}
        for sig in seg.analogsignals:
            kind, factor = _signal_kind(sig)
            if kind is None:
                raise ValueError(f"{where}: signal {sig.name!r} is in {sig.units.dimensionality.string!r}, neither a "
                                 "voltage (V, mV) nor a current (A, nA, pA): unknown units")
            if kind not in found:
                found[kind] = (np.asarray(sig.magnitude, float)[:, 0] * factor, float(sig.sampling_rate.rescale("Hz")))
        if "voltage" not in found:
            raise ValueError(f"{where}: a sweep without a voltage signal; only current-clamp sweeps can be measured")
        if "current" not in found:
            raise ValueError(f"{where}: no stimulus: its sweeps hold no current signal (an ABF keeps the command "
                             "waveform only if it was recorded as a channel); give the sweeps as a table of "
                             "amplitudes and spike times (.csv) instead")
        (v, v_rate), (i, i_rate) = found["voltage"], found["current"]
        if abs(v_rate - i_rate) > 1e-6 * v_rate or (rate is not None and abs(v_rate - rate) > 1e-6 * rate):
            raise ValueError(f"{where}: mismatched sampling rates ({v_rate:g} Hz voltage, {i_rate:g} Hz current"
                             + (f", {rate:g} Hz in other sweeps" if rate is not None else "") + "); resample first")
        rate = v_rate
        n = min(v.size, i.size)
        volt_rows.append(v[:n])
        stim_rows.append(i[:n])
    if not volt_rows:
        raise ValueError(f"{where}: no sweeps (segments) in the file")
    n = min(r.size for r in volt_rows)
    return StepSweeps.from_traces(np.stack([r[:n] for r in stim_rows]), np.stack([r[:n] for r in volt_rows]),
                                  1000.0 / rate, source=Path(path).name)


def read_spike_table(path: str | Path) -> StepSweeps:
    """Spike-time sweeps from a CSV/TSV table with a header: one row per sweep, columns `TABLE_COLUMNS` (the
    amplitude as ``amp_nA`` or ``amp_pA``; onset and duration equal on every row)."""
    where = str(path)
    delimiter = "\t" if Path(path).suffix.lower() == ".tsv" else ","
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=delimiter))
    if not rows:
        raise ValueError(f"{where}: an empty table; one row per sweep with columns {TABLE_COLUMNS}")
    columns = set(rows[0])
    amp_col = next((c for c in ("amp_nA", "amp_pA") if c in columns), None)
    if amp_col is None:
        unit = next((c for c in columns if c.lower().startswith("amp")), None)
        raise ValueError(f"{where}: " + (f"unknown units of column {unit!r}; name it amp_nA or amp_pA" if unit else
                                         f"no amplitude column; the table needs {TABLE_COLUMNS}"))
    missing = [c for c in ("delay_ms", "dur_ms", "spike_times_ms") if c not in columns]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}; the table needs {TABLE_COLUMNS}")
    scale = 1.0 if amp_col == "amp_nA" else 1e-3
    try:
        amps = [float(r[amp_col]) * scale for r in rows]
        delays, durs = [float(r["delay_ms"]) for r in rows], [float(r["dur_ms"]) for r in rows]
        spikes = [[float(x) for x in (r["spike_times_ms"] or "").replace(";", " ").split()] for r in rows]
    except ValueError as exc:
        raise ValueError(f"{where}: a value is not a number ({exc}); spike times are space-separated ms") from None
    if np.ptp(delays) > 1e-6 or np.ptp(durs) > 1e-6:
        raise ValueError(f"{where}: the sweeps' steps differ in onset or duration; one table per step timing")
    return StepSweeps(np.array(amps), delays[0], durs[0], spikes, source=Path(path).name)


def sweeps_from_dataset(path: str | Path, model_id: str) -> StepSweeps:
    """One model's Long Square sweeps from a noble_neuron dataset (``noble-neuron generate``: a detailed model
    simulated on a step protocol, e.g. ``--protocol train_draws_48``)."""
    from ..data.dataset import open_dataset

    ds = open_dataset(path)
    if model_id not in ds.model_ids:
        raise ValueError(f"{path} has no model {model_id!r}; it has {ds.model_ids[:8]}"
                         + (" ..." if len(ds.model_ids) > 8 else ""))
    rows = ds.rows(model_id=model_id, kind="long_square")
    if rows.size < 2:
        raise ValueError(f"{path}: model {model_id!r} has {rows.size} Long Square sweeps; simulate a step protocol "
                         "(noble-neuron generate --protocol train_draws_48)")
    return StepSweeps.from_traces(ds.read(rows, "stimulus_nA"), ds.read(rows), ds.dt_ms, source=model_id)


def write_nwb(sweeps: StepSweeps, path: str | Path, *, description: str = "step sweeps",
              identifier: str | None = None, stimulus_description: str | list = "Long Square",
              stimulus_nA: np.ndarray | None = None) -> Path:
    """`sweeps` (with voltage) as an NWB file: one CurrentClampSeries (volts) and one CurrentClampStimulusSeries
    (amperes) per sweep, numbered, with its stimulus description (one, or one per sweep); the currents are the
    sweeps' steps or `stimulus_nA` (N, L). For synthetic recordings (a detailed model's sweeps) and round trips."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    if not sweeps.has_voltage:
        raise ValueError("only sweeps with voltage can be written to NWB; spike-time sweeps go to a CSV table")
    nwb = NWBFile(session_description=description, identifier=identifier or Path(path).stem,
                  session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    device = nwb.create_device(name="amplifier")
    electrode = nwb.create_icephys_electrode(name="electrode", description="somatic whole-cell", device=device)
    stim = sweeps.stimulus_nA() if stimulus_nA is None else np.asarray(stimulus_nA, dtype=float)
    rate = 1000.0 / sweeps.dt_ms
    described = [stimulus_description] * sweeps.n_sweeps if isinstance(stimulus_description, str) \
        else list(stimulus_description)
    for k in range(sweeps.n_sweeps):
        nwb.add_acquisition(CurrentClampSeries(name=f"sweep_{k:03d}", data=sweeps.voltage_mV[k] * 1e-3,
                                               electrode=electrode, gain=1.0, rate=rate, sweep_number=np.uint32(k),
                                               stimulus_description=described[k]))
        nwb.add_stimulus(CurrentClampStimulusSeries(name=f"stimulus_{k:03d}", data=stim[k] * 1e-9,
                                                    electrode=electrode, gain=1.0, rate=rate, sweep_number=np.uint32(k),
                                                    stimulus_description=described[k]))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return Path(path)
