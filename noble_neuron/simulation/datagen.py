"""Generate a training dataset: map `simulate` over a model × protocol grid, resumably.

Integrity: which write happens when, what a crash at each point leaves, how a rerun recovers.

1. One writer: `generate` holds an exclusive lock on ``<out>.lock`` (`noble_neuron.simulation.writer_lock`)
   for as long as it writes; a second run on the same ``--out`` is refused at once, naming
   the other process, and never touches the file or its journal. An HDF5 file locked by
   another process (a reader, another tool) is reported as busy, never as corrupt.
2. A worker writes each finished simulation to the journal
   (``<out>.journal/<signature>/row_NNNNNNN.npy``: temporary file, fsync, atomic rename)
   before it returns it. A crash before the rename leaves only a temporary file (ignored;
   the row is simulated again); after it, the row is safe.
3. The parent writes the row into the HDF5 file, flushes, reads it back and compares, and
   only then sets ``done`` and flushes again. A crash (or a full disk, reported as "no space
   left on device") in between leaves the row pending; the rerun imports it from the journal.
4. On every (re)start, rows marked ``done`` whose data is not finite (files written before
   these checks, or lost by the file system) are reset to pending, and journal rows missing
   from the file are imported; a file HDF5 cannot open is set aside as ``<out>.corrupt``
   and rebuilt from the journal.
5. Only when every row is done AND every row reads back finite is ``complete`` set and the
   journal deleted; otherwise the journal stays and the run fails, naming the rows.

Calibration (``v_init="auto"`` and/or a `RheobaseRelativeSteps` plan) runs first, one job per
model through the same engine: the resting potential and the rheobase are written atomically
to ``<journal>/calibration.json`` and then stored in the dataset (``/models/v_init_mV``,
``/models/rheobase_nA``); a crash before the file exists repeats only the missing models.

Splits are metadata, not rows: a changed split on an existing dataset is applied (logged).

Engines (`noble_neuron.simulation.engines`): "serial", "pool" (local process pool, default) and
"nrn-bb" (NEURON ParallelContext bulletin board; under ``mpiexec -n N`` ranks 1…N−1 serve jobs from the start
of `generate` and rank 0 alone takes the lock and writes the file; the CLI then ends every
rank through ``h.quit``, which finalises MPI). Any other cluster engine plugs in as a callable
that takes a list of job chunks and the journal folder and yields results of `run_chunk`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._version import __version__
from ..data.dataset import DatasetBusyError, DatasetError, create_dataset, open_h5
from .output_file import (check_out_path, disk_nearly_full, is_disk_full, quiet_failed_hdf5_writes,
                          remove_if_nothing_finished)
from .writer_lock import exclusive_writer
from ..detailed.spec import CellSpec, file_sha256, model_provenance
from ..stimuli.protocols import Protocol, n_samples
from ..stimuli.presets import RheobaseRelativeSteps
from .engines import Engine, bulletin_board, journal_read, make_engine, run_chunk
from .simulate import SIM_DT_MS, DOWNSAMPLE
from ..validation import is_int

__all__ = ["generate", "run_chunk", "make_jobs", "run_signature", "per_model_protocols"]

log = logging.getLogger(__name__)

def per_model_protocols(specs: Sequence[CellSpec], protocols) -> list[list[Protocol]] | None:
    """The per-model protocol lists when `protocols` gives one list per model, None when it is one shared list."""
    if not protocols or not isinstance(protocols[0], (list, tuple)):
        return None
    if len(protocols) != len(specs):
        raise ValueError(f"per-model protocols: {len(protocols)} lists for {len(specs)} models")
    if not all(protocols):
        raise ValueError("per-model protocols: every model needs at least one protocol")
    return [list(p) for p in protocols]


def run_signature(specs: Sequence[CellSpec], protocols, sim_dt_ms: float, downsample: int,
                  seed_per_model: int = 0, v_init: str | float = "template") -> str:
    """Hash of everything that determines the dataset's rows: each model's provenance (parameters,
    constructor arguments, the content of every file it loads and of its .mod sources, not their
    paths), the protocols (or the rheobase-relative plan), dt, seeds and the initial voltage."""
    payload = {
        "models": [model_provenance(s) for s in specs],
        "sim_dt_ms": sim_dt_ms,
        "downsample": downsample,
    }
    if isinstance(protocols, RheobaseRelativeSteps):
        payload["protocol_plan"] = protocols.to_dict()
    elif (per_model := per_model_protocols(specs, protocols)) is None:
        payload["protocols"] = [p.to_dict() for p in protocols]
    else:
        payload["protocols_per_model"] = [[p.to_dict() for p in ps] for ps in per_model]
    if seed_per_model:
        payload["seed_per_model"] = seed_per_model
    if v_init != "template":
        payload["v_init"] = v_init
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def make_jobs(specs: Sequence[CellSpec], protocols, sim_dt_ms: float, downsample: int,
              seed_per_model: int = 0, v_init_mV: Sequence[float | None] | None = None,
              steady_state: bool = False) -> list[dict]:
    """One job per (model, protocol), model-major, as plain picklable dicts.

    ``protocols``: one list shared by every model, or one list per model (`per_model_protocols`;
    e.g. step amplitudes drawn per model), rows then follow the concatenated lists.

    ``seed_per_model`` > 0: a seeded protocol (noise, barrage) of model i uses seed
    ``seed + i · seed_per_model``, so every model sees its own waveforms (for training
    input-driven surrogates on more distinct inputs at the same simulation cost).

    ``v_init_mV``: the initial voltage of each model (None: hoc's v_init); ``steady_state``: start
    every simulation from the cell's steady state (`simulate.steady_state_initialize`)."""
    def for_model(p: Protocol, i: int) -> dict:
        d = p.to_dict()
        if seed_per_model and "seed" in d:
            d["seed"] = int(d["seed"]) + i * seed_per_model
        return d

    per_model = per_model_protocols(specs, protocols) or [list(protocols)] * len(specs)
    jobs = []
    for i, (s, ps) in enumerate(zip(specs, per_model)):
        for p in ps:
            jobs.append({"row": len(jobs), "spec": s.to_dict(), "protocol": for_model(p, i),
                         "sim_dt_ms": sim_dt_ms, "downsample": downsample,
                         "v_init_mV": None if v_init_mV is None else v_init_mV[i], "steady_state": steady_state})
    return jobs


# ---------------------------------------------------------------- driver
def _store_row(f, r: dict) -> None:
    row = r["row"]
    f["voltage_mV"][row] = r["v_mV"]
    f["stimulus_nA"][row] = r["i_nA"]
    f["wall_s"][row] = r["wall_s"]


def _write_rows(f, results: Iterable[dict]) -> int:
    """Write rows, flush them to disk, read them back, and only then mark them done (flushed again)."""
    results = list(results)
    for r in results:
        _store_row(f, r)
    f.flush()
    for r in results:
        row = r["row"]
        same = (np.array_equal(f["voltage_mV"][row], np.asarray(r["v_mV"], np.float32), equal_nan=True)
                and np.array_equal(f["stimulus_nA"][row], np.asarray(r["i_nA"], np.float32), equal_nan=True))
        if not same:
            raise DatasetError(f"row {row} read back from the dataset differs from what was written; the disk or "
                               "file system lost data (the row stays pending; its copy is kept in the journal)")
        f["done"][row] = 1
    f.flush()
    return len(results)


def _unverified_done_rows(f, chunk: int = 256) -> np.ndarray:
    """Rows marked done whose stored voltage or stimulus is not finite (written by an older version, or lost)."""
    done = np.flatnonzero(f["done"][:].astype(bool))
    bad = []
    for i in range(0, done.size, chunk):
        rows = done[i:i + chunk]
        ok = np.isfinite(f["voltage_mV"][rows]).all(axis=1) & np.isfinite(f["stimulus_nA"][rows]).all(axis=1)
        bad.extend(rows[~ok].tolist())
    return np.asarray(bad, dtype=int)


#: seconds per simulation without any finishing after which the pool engine stops a run (a hung template)
DEFAULT_SIM_TIMEOUT_S = 900.0
#: a protocol current beyond this (nA) is refused: a unit mistake (pA for nA), not an experiment on a neuron
MAX_PLAUSIBLE_CURRENT_NA = 100.0


def _provenance(specs: Sequence[CellSpec], sim_dt_ms: float, downsample: int, signature: str) -> dict:
    from importlib.metadata import version

    from ..detailed.mechanisms import mod_hash

    templates = sorted({(s.template_name, file_sha256(s.template_path)) for s in specs})
    mech_dirs = sorted({s.mechanisms_dir for s in specs if s.mechanisms_dir})
    return {
        "sim_dt_ms": sim_dt_ms,
        "downsample": downsample,
        "signature": signature,
        "template_name": ",".join(t[0] for t in templates),
        "template_sha256": ",".join(t[1] for t in templates),
        "mechanisms_sha256": ",".join(mod_hash(d) for d in mech_dirs),
        "neuron_version": version("neuron"),
        "noble_neuron_version": __version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "created_unix": time.time(),
    }


def _check_v_init(v_init) -> str | float:
    if v_init in ("auto", "template"):
        return v_init
    try:
        x = float(v_init)
    except (TypeError, ValueError):
        raise ValueError(f"v_init must be 'auto' (rest found by a pre-run), 'template' (hoc's v_init) or a voltage "
                         f"in mV, got {v_init!r}") from None
    if isinstance(v_init, bool) or not -150.0 <= x <= 50.0:
        raise ValueError(f"v_init = {v_init!r} mV is not a plausible membrane voltage (-150 … 50 mV)")
    return x


def generate(
    specs: Sequence[CellSpec],
    protocols,
    out: str | Path,
    *,
    splits: Sequence[str | None] | None = None,
    n_workers: int | None = None,
    engine: str | Engine = "pool",
    sim_dt_ms: float = SIM_DT_MS,
    downsample: int = DOWNSAMPLE,
    chunk_size: int = 4,
    progress: bool = True,
    overwrite: bool = False,
    seed_per_model: int = 0,
    v_init: str | float = "template",
    sim_timeout_s: float | None = DEFAULT_SIM_TIMEOUT_S,
) -> Path:
    """Simulate every (model, protocol) pair into the HDF5 dataset `out`; resume if it exists.

    ``protocols``: one list for every model, one list per model (rows model-major), or a
    `RheobaseRelativeSteps` plan (amplitudes relative to each model's rheobase, found first).

    ``splits``: "train"/"unseen" per model; None (or a None entry) keeps the split stored in an
    existing dataset, and is "train" in a new one. A changed split is applied to the file.

    ``v_init``: "template" (hoc's v_init: NEURON's default or the model's ``global.v_init``),
    "auto" (each model's resting potential, found by a pre-run and stored), or a voltage (mV).

    ``seed_per_model``: see `make_jobs` (stored as the dataset attribute of that name; the
    stored protocol table then holds each protocol's base seed).

    ``sim_timeout_s``: the "pool" engine stops a run in which no simulation finished for this long (s per
    simulation of a chunk: a template that never returns); None or 0 waits forever, and "serial" always does.

    Raises DatasetError if `out` exists but was generated for other models/protocols/dt
    (use overwrite=True or another path) or is corrupt without a journal to rebuild it from,
    if the disk fills up (rerun to resume), and WriterLockError if another process writes `out`.
    """
    pc = bulletin_board() if engine == "nrn-bb" else None  # MPI worker ranks serve jobs in here
    try:
        return _generate(specs, protocols, Path(out), splits, n_workers, engine, sim_dt_ms, downsample, chunk_size,
                         progress, overwrite, seed_per_model, v_init, sim_timeout_s)
    finally:
        if pc is not None:
            pc.done()


def _generate(specs, protocols, out, splits, n_workers, engine, sim_dt_ms, downsample, chunk_size, progress,
              overwrite, seed_per_model, v_init, sim_timeout_s) -> Path:
    if not specs or not protocols:
        raise ValueError("generate needs at least one model and one protocol")
    ids = [s.model_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"model ids must be unique; duplicates: {sorted({i for i in ids if ids.count(i) > 1})}")
    if splits is not None and len(splits) != len(specs):
        raise ValueError(f"splits: {len(splits)} entries for {len(specs)} models")
    v_init = _check_v_init(v_init)
    plan = protocols if isinstance(protocols, RheobaseRelativeSteps) else None
    if plan is None:
        per_model = per_model_protocols(specs, protocols)
        flat = [p for ps in per_model for p in ps] if per_model is not None else list(protocols)
        absurd = [p for p in flat if abs(p.amp_nA) + 5.0 * abs(getattr(p, "sigma_nA", 0.0)) > MAX_PLAUSIBLE_CURRENT_NA]
        if absurd:
            raise ValueError(f"protocol {absurd[0].to_json()} injects more than {MAX_PLAUSIBLE_CURRENT_NA:g} nA, which "
                             "no neuron takes (NEURON would store voltages of 10^6 mV); amplitudes are in nA (0.3 is "
                             f"300 pA); {len(absurd)} protocol(s) like it")
        totals = {p.total_ms for p in flat}
        if len(totals) != 1:
            raise ValueError(f"all protocols of one dataset must share total_ms; got {sorted(totals)}")
        total_ms = flat[0].total_ms
    else:
        total_ms = plan.total_ms
    if not isinstance(downsample, int) or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    n_sim_samples = n_samples(total_ms, sim_dt_ms)  # validates sim_dt_ms
    n_out = n_samples(total_ms, sim_dt_ms * downsample)
    if n_sim_samples < downsample:
        raise ValueError("sim_dt_ms × downsample is longer than the protocol")
    for s in specs:
        if not Path(s.template_path).is_file():
            raise FileNotFoundError(f"{s.model_id}: HoC template {s.template_path} does not exist")
    if not is_int(seed_per_model) or seed_per_model < 0:
        raise ValueError(f"seed_per_model must be an integer >= 0, got {seed_per_model!r}")
    seed_per_model = int(seed_per_model)
    signature = run_signature(specs, protocols, sim_dt_ms, downsample, seed_per_model, v_init)
    journal = out.with_name(out.name + ".journal") / signature[:16]

    check_out_path(out)
    run = GenerateRun(out=out, journal=journal, specs=list(specs), protocols=protocols, plan=plan, splits=splits,
                      signature=signature, sim_dt_ms=sim_dt_ms, downsample=downsample, seed_per_model=seed_per_model,
                      v_init=v_init, n_out=n_out, overwrite=overwrite, n_workers=n_workers, engine=engine,
                      chunk_size=chunk_size, progress=progress, sim_timeout_s=sim_timeout_s)
    existed = out.exists()
    with quiet_failed_hdf5_writes():
        try:
            with exclusive_writer(out):
                try:
                    return run.locked()
                except Exception:
                    if not existed:  # refused before any simulation finished: nothing to keep, nothing to refuse later
                        remove_if_nothing_finished(out, journal.parent)
                    raise
        except (OSError, RuntimeError) as exc:
            # HDF5 buffers its writes: a full disk may surface only as a row that reads back wrong, or a failed flush
            if is_disk_full(exc) or disk_nearly_full(out.parent):
                traceback.clear_frames(exc.__traceback__)  # its frames' HDF5 objects go now, not at exit (SIGSEGV)
                raise DatasetError(
                    f"no space left on device while writing {out} or its journal ({exc}); free some space and run the "
                    "same command again: every finished simulation is kept (journal) and none is run twice") from None
            if not isinstance(exc, OSError):
                raise
            if isinstance(exc, PermissionError):
                raise DatasetError(f"--out {out}: no permission to write in {out.parent} ({exc}); choose a writable "
                                   "folder") from None
            raise


@dataclass
class GenerateRun:
    """One `generate` call's settings, and the writing part that runs under the output's lock."""

    out: Path
    journal: Path
    specs: list
    protocols: object
    plan: RheobaseRelativeSteps | None
    splits: Sequence[str | None] | None
    signature: str
    sim_dt_ms: float
    downsample: int
    seed_per_model: int
    v_init: str | float
    n_out: int
    overwrite: bool
    n_workers: int | None
    engine: object
    chunk_size: int
    progress: bool
    sim_timeout_s: float | None

    def _engine(self):
        return make_engine(self.engine, self.n_workers or os.cpu_count() or 1, self.sim_timeout_s)

    def _open_existing(self) -> None:
        out = self.out
        if self.overwrite:
            out.unlink(missing_ok=True)
            shutil.rmtree(out.with_name(out.name + ".journal"), ignore_errors=True)
        if not out.exists():
            return
        try:
            with open_h5(out, "r") as f:
                if f.attrs.get("signature") != self.signature:
                    raise DatasetError(
                        f"{out} exists but was generated for different models, protocols, dt or v_init, or a file the "
                        "models load (template, preloads, morphology, .mod sources) has changed since (signature "
                        "mismatch); pass --overwrite to replace it or choose another --out"
                    )
        except DatasetError as exc:
            if isinstance(exc, DatasetBusyError) or "signature mismatch" in str(exc) or not self.journal.is_dir():
                raise
            log.warning("%s is unreadable (%s); rebuilding it from the journal %s", out, exc, self.journal)
            out.replace(out.with_name(out.name + ".corrupt"))

    def _calibration(self) -> tuple[list, list]:
        """(v_init_mV, rheobase_nA) per model: from the dataset, the journal, or calibration jobs."""
        n = len(self.specs)
        if self.v_init != "auto" and self.plan is None:
            fixed = None if self.v_init == "template" else float(self.v_init)
            return [fixed] * n, [None] * n
        if self.out.exists():
            with open_h5(self.out, "r") as f:
                return ([None if np.isnan(v) else float(v) for v in f["models/v_init_mV"][:]],
                        [None if np.isnan(v) else float(v) for v in f["models/rheobase_nA"][:]])
        cache = self.journal / "calibration.json"
        found = json.loads(cache.read_text()) if cache.is_file() else {}
        todo = [{"calibrate": True, "model": i, "spec": s.to_dict(), "v_init": self.v_init, "sim_dt_ms": self.sim_dt_ms,
                 "rheobase_timing": None if self.plan is None else {"delay_ms": self.plan.delay_ms,
                                                                     "dur_ms": self.plan.dur_ms}}
                for i, s in enumerate(self.specs) if str(i) not in found]
        if todo:
            log.info("calibrating %d model(s): %s", len(todo),
                     " and ".join(w for w, on in (("resting potential", self.v_init == "auto"),
                                                  ("rheobase", self.plan is not None)) if on))
            from tqdm import tqdm

            with tqdm(total=len(todo), disable=not self.progress, unit="model", desc="calibrating") as bar:
                for results in self._engine()([[j] for j in todo], None):
                    for r in results:
                        found[str(r["model"])] = [r["v_init_mV"], r["rheobase_nA"]]
                        _atomic_write_text(cache, json.dumps(found))
                        bar.update(1)
        return [found[str(i)][0] for i in range(n)], [found[str(i)][1] for i in range(n)]

    def _resolved_protocols(self, rheobase_nA) -> list:
        if self.plan is None:
            return self.protocols
        return [self.plan.for_model(i, r) for i, r in enumerate(rheobase_nA)]

    def _apply_splits(self) -> None:
        if self.splits is None or all(s is None for s in self.splits):
            return
        with open_h5(self.out, "r+") as f:
            stored = [s.decode() if isinstance(s, bytes) else s for s in f["models/split"][:]]
            wanted = [w if w is not None else old for w, old in zip(self.splits, stored)]
            if wanted != stored:
                changed = [(self.specs[i].model_id, old, new) for i, (old, new) in enumerate(zip(stored, wanted))
                           if old != new]
                log.info("%s: split changed for %d model(s) and applied (e.g. %s)", self.out.name, len(changed),
                         ", ".join(f"{m}: {a} → {b}" for m, a, b in changed[:4]))
                f["models/split"][:] = wanted
                f.flush()

    def locked(self) -> Path:
        from tqdm import tqdm

        out, journal, specs = self.out, self.journal, self.specs
        self._open_existing()
        journal.mkdir(parents=True, exist_ok=True)
        v_init_mV, rheobase_nA = self._calibration()
        protocols = self._resolved_protocols(rheobase_nA)
        per_model = per_model_protocols(specs, protocols)
        flat = [p for ps in per_model for p in ps] if per_model is not None else list(protocols)
        jobs = make_jobs(specs, protocols, self.sim_dt_ms, self.downsample, self.seed_per_model, v_init_mV,
                         steady_state=self.v_init == "auto")
        if per_model is None:
            row_model = np.repeat(np.arange(len(specs)), len(protocols))
            row_protocol = np.tile(np.arange(len(protocols)), len(specs))
        else:
            row_model = np.repeat(np.arange(len(specs)), [len(ps) for ps in per_model])
            row_protocol = np.arange(len(flat))
        if not out.exists():
            splits = [s or "train" for s in self.splits] if self.splits is not None else ["train"] * len(specs)
            create_dataset(
                out, n_samples=self.n_out, dt_ms=self.sim_dt_ms * self.downsample,
                model_ids=[s.model_id for s in specs], model_splits=splits,
                model_parameters=[dict(s.parameters) for s in specs],
                protocol_json=[p.to_json() for p in flat],
                row_model=row_model, row_protocol=row_protocol,
                row_amp_nA=np.array([flat[k].amp_nA for k in row_protocol]),
                attrs=_provenance(specs, self.sim_dt_ms, self.downsample, self.signature)
                | {"seed_per_model": int(self.seed_per_model), "v_init": str(self.v_init)},
                model_v_init_mV=v_init_mV, model_rheobase_nA=rheobase_nA,
            )
        else:
            self._apply_splits()

        with open_h5(out, "r+") as f:
            lost = _unverified_done_rows(f)
            if lost.size:
                log.warning("%d row(s) marked done hold no finite data (e.g. %s); they are restored from the journal "
                            "or simulated again", lost.size, lost[:5].tolist())
                f["done"][np.sort(lost)] = 0
                f.flush()
            done = f["done"][:].astype(bool)
            recovered = [r for r in journal_read(journal) if not done[r["row"]]]
            if recovered:
                log.info("recovered %d finished simulations from the journal", len(recovered))
                _write_rows(f, recovered)
                f.flush()
                done = f["done"][:].astype(bool)
            pending = [j for j in jobs if not done[j["row"]]]
            chunks = [pending[i:i + self.chunk_size] for i in range(0, len(pending), self.chunk_size)]
            with tqdm(total=len(jobs), initial=len(jobs) - len(pending), disable=not self.progress,
                      unit="sim", desc=f"simulating → {out.name}") as bar:
                for results in self._engine()(chunks, str(journal)):
                    bar.update(_write_rows(f, results))
                    f.flush()
            if not f["done"][:].all():
                raise DatasetError(f"{out}: some simulations did not finish; run the same command again to resume")
            lost = _unverified_done_rows(f)
            if lost.size:  # never drop the journal while a row lacks its data
                f["done"][np.sort(lost)] = 0
                raise DatasetError(f"{out}: rows {lost[:5].tolist()} did not survive on disk; run the same command "
                                   "again (they are restored from the journal or simulated again)")
            f.attrs["complete"] = True
            f.flush()
        shutil.rmtree(journal.parent, ignore_errors=True)
        return out


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
