"""Generate a training dataset: map `simulate` over a model × protocol grid, resumably.

Integrity: which write happens when, what a crash at each point leaves, how a rerun recovers.

1. One writer: `generate` holds an exclusive lock on ``<out>.lock`` (`noble_neuron.writer_lock`)
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

Engines: "serial", "pool" (local process pool, default) and "nrn-bb" (NEURON
ParallelContext bulletin board; under ``mpiexec -n N`` the ranks share the work, rank 0
writes the file). Any other cluster engine plugs in through `run_jobs(jobs, engine=<callable>)`:
a callable that takes a list of job dicts and yields results of `run_chunk`.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ._version import __version__
from .dataset import DatasetBusyError, DatasetError, create_dataset, _open_h5
from .writer_lock import exclusive_writer
from .protocols import Protocol, n_samples, protocol_from_dict
from .simulate import SIM_DT_MS, DOWNSAMPLE, CellSpec, file_sha256

__all__ = ["generate", "run_chunk", "make_jobs", "run_signature", "per_model_protocols"]

log = logging.getLogger(__name__)

Engine = Callable[[list[list[dict]]], Iterator[list[dict]]]


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
                  seed_per_model: int = 0) -> str:
    """Hash of everything that determines the dataset's rows (models, template, protocols, dt, seeds)."""
    per_model = per_model_protocols(specs, protocols)
    payload = {
        "models": [s.to_dict() | {"template_sha256": file_sha256(s.template_path)} for s in specs],
        "sim_dt_ms": sim_dt_ms,
        "downsample": downsample,
    }
    if per_model is None:
        payload["protocols"] = [p.to_dict() for p in protocols]
    else:
        payload["protocols_per_model"] = [[p.to_dict() for p in ps] for ps in per_model]
    if seed_per_model:
        payload["seed_per_model"] = seed_per_model
    for m in payload["models"]:
        m.pop("template_path")  # the same template moved elsewhere is the same model
        m.pop("mechanisms_dir")
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def make_jobs(specs: Sequence[CellSpec], protocols, sim_dt_ms: float, downsample: int,
              seed_per_model: int = 0) -> list[dict]:
    """One job per (model, protocol), model-major, as plain picklable dicts.

    ``protocols``: one list shared by every model, or one list per model (`per_model_protocols`;
    e.g. step amplitudes drawn per model), rows then follow the concatenated lists.

    ``seed_per_model`` > 0: a seeded protocol (noise, barrage) of model i uses seed
    ``seed + i · seed_per_model``, so every model sees its own waveforms (for training
    input-driven surrogates on more distinct inputs at the same simulation cost)."""
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
                         "sim_dt_ms": sim_dt_ms, "downsample": downsample})
    return jobs


# ---------------------------------------------------------------- worker side
_worker_cell: tuple[str, object] | None = None


def run_chunk(jobs: list[dict], journal_dir: str | None = None) -> list[dict]:
    """Run jobs (usually consecutive rows of one model) in this process; journal each result."""
    from .simulate import instantiate_cell, simulate

    global _worker_cell
    results = []
    for job in jobs:
        spec = CellSpec(**{**job["spec"], "template_args": tuple(job["spec"]["template_args"])})
        if _worker_cell is None or _worker_cell[0] != spec.model_id:
            _worker_cell = None  # drop the previous cell first: only one cell may exist
            _worker_cell = (spec.model_id, instantiate_cell(spec))
        res = simulate(spec, protocol_from_dict(job["protocol"]), job["sim_dt_ms"], job["downsample"],
                       cell=_worker_cell[1])
        out = {"row": job["row"], "v_mV": res.v_mV, "i_nA": res.i_nA, "wall_s": res.wall_s}
        if journal_dir is not None:
            _journal_write(Path(journal_dir), out)
        results.append(out)
    return results


def _journal_write(journal: Path, result: dict) -> None:
    final = journal / f"row_{result['row']:07d}.npy"
    tmp = journal / f".row_{result['row']:07d}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, np.stack([result["v_mV"], result["i_nA"]]).astype(np.float32))
        np.save(fh, np.float32(result["wall_s"]))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def _journal_read(journal: Path) -> Iterator[dict]:
    for f in sorted(journal.glob("row_*.npy")):
        try:
            with open(f, "rb") as fh:
                vi = np.load(fh)
                wall = float(np.load(fh))
        except (OSError, ValueError, EOFError):
            log.warning("ignoring unreadable journal entry %s (it will be simulated again)", f)
            continue
        yield {"row": int(f.stem.split("_")[1]), "v_mV": vi[0], "i_nA": vi[1], "wall_s": wall}


# ---------------------------------------------------------------- engines
def _serial_engine(chunks, journal_dir):
    for chunk in chunks:
        yield run_chunk(chunk, journal_dir)


def _pool_engine(n_workers: int):
    def engine(chunks, journal_dir):
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_chunk, chunk, journal_dir) for chunk in chunks]
            for fut in as_completed(futures):
                yield fut.result()
    return engine


def _nrn_bulletin_board_engine(chunks, journal_dir):
    """NEURON ParallelContext bulletin board: works serially, or across MPI ranks."""
    from neuron import h

    pc = h.ParallelContext()
    pc.runworker()  # worker ranks serve jobs here and never return; rank 0 continues
    for chunk in chunks:
        pc.submit(run_chunk, chunk, journal_dir)
    while pc.working():
        yield pc.pyret()
    pc.done()


def _make_engine(engine: str | Engine, n_workers: int):
    if callable(engine):
        return engine
    if engine == "serial" or (engine == "pool" and n_workers <= 1):
        return _serial_engine
    if engine == "pool":
        return _pool_engine(n_workers)
    if engine == "nrn-bb":
        return _nrn_bulletin_board_engine
    raise ValueError(f"unknown engine {engine!r}; use 'pool', 'serial', 'nrn-bb' or a callable")


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


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc)


def _provenance(specs: Sequence[CellSpec], sim_dt_ms: float, downsample: int, signature: str) -> dict:
    from importlib.metadata import version

    from .mechanisms import mod_hash

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


def generate(
    specs: Sequence[CellSpec],
    protocols,
    out: str | Path,
    *,
    splits: Sequence[str] | None = None,
    n_workers: int | None = None,
    engine: str | Engine = "pool",
    sim_dt_ms: float = SIM_DT_MS,
    downsample: int = DOWNSAMPLE,
    chunk_size: int = 4,
    progress: bool = True,
    overwrite: bool = False,
    seed_per_model: int = 0,
) -> Path:
    """Simulate every (model, protocol) pair into the HDF5 dataset `out`; resume if it exists.

    ``protocols``: one list for every model, or one list per model (rows model-major).

    ``seed_per_model``: see `make_jobs` (stored as the dataset attribute of that name; the
    stored protocol table then holds each protocol's base seed).

    Raises DatasetError if `out` exists but was generated for other models/protocols/dt
    (use overwrite=True or another path) or is corrupt without a journal to rebuild it from,
    if the disk fills up (rerun to resume), and WriterLockError if another process writes `out`.
    """
    out = Path(out)
    if not specs or not protocols:
        raise ValueError("generate needs at least one model and one protocol")
    ids = [s.model_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"model ids must be unique; duplicates: {sorted({i for i in ids if ids.count(i) > 1})}")
    per_model = per_model_protocols(specs, protocols)
    flat = [p for ps in per_model for p in ps] if per_model is not None else list(protocols)
    totals = {p.total_ms for p in flat}
    if len(totals) != 1:
        raise ValueError(f"all protocols of one dataset must share total_ms; got {sorted(totals)}")
    if not isinstance(downsample, int) or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    n_sim_samples = n_samples(flat[0].total_ms, sim_dt_ms)  # validates sim_dt_ms
    n_out = n_samples(flat[0].total_ms, sim_dt_ms * downsample)
    if n_sim_samples < downsample:
        raise ValueError("sim_dt_ms × downsample is longer than the protocol")
    for s in specs:
        if not Path(s.template_path).is_file():
            raise FileNotFoundError(f"{s.model_id}: HoC template {s.template_path} does not exist")
    if isinstance(seed_per_model, bool) or not isinstance(seed_per_model, int) or seed_per_model < 0:
        raise ValueError(f"seed_per_model must be an integer >= 0, got {seed_per_model!r}")
    signature = run_signature(specs, protocols, sim_dt_ms, downsample, seed_per_model)
    journal = out.with_name(out.name + ".journal") / signature[:16]
    jobs = make_jobs(specs, protocols, sim_dt_ms, downsample, seed_per_model)

    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    try:
        with exclusive_writer(out):
            return _generate_locked(out, journal, jobs, specs, splits, ids, protocols, per_model, flat, signature,
                                    sim_dt_ms, downsample, seed_per_model, n_out, overwrite, n_workers, engine,
                                    chunk_size, progress)
    except OSError as exc:
        if _is_disk_full(exc):
            raise DatasetError(
                f"no space left on device while writing {out} or its journal ({exc}); free some space and run the "
                "same command again: every finished simulation is kept (journal) and none is run twice") from None
        if isinstance(exc, PermissionError):
            raise DatasetError(f"--out {out}: no permission to write in {out.parent} ({exc}); choose a writable "
                               "folder") from None
        raise


def _generate_locked(out, journal, jobs, specs, splits, ids, protocols, per_model, flat, signature, sim_dt_ms,
                     downsample, seed_per_model, n_out, overwrite, n_workers, engine, chunk_size, progress) -> Path:
    """The writing part of `generate`, under the output's exclusive writer lock."""
    from tqdm import tqdm

    if overwrite:
        out.unlink(missing_ok=True)
        shutil.rmtree(out.with_name(out.name + ".journal"), ignore_errors=True)
    if out.exists():
        try:
            with _open_h5(out, "r") as f:
                if f.attrs.get("signature") != signature:
                    raise DatasetError(
                        f"{out} exists but was generated for different models, protocols or dt "
                        "(signature mismatch); pass --overwrite to replace it or choose another --out"
                    )
        except DatasetError as exc:
            if isinstance(exc, DatasetBusyError) or "signature mismatch" in str(exc) or not journal.is_dir():
                raise
            log.warning("%s is unreadable (%s); rebuilding it from the journal %s", out, exc, journal)
            out.replace(out.with_name(out.name + ".corrupt"))
    if per_model is None:
        row_model = np.repeat(np.arange(len(specs)), len(protocols))
        row_protocol = np.tile(np.arange(len(protocols)), len(specs))
    else:
        row_model = np.repeat(np.arange(len(specs)), [len(ps) for ps in per_model])
        row_protocol = np.arange(len(flat))
    if not out.exists():
        create_dataset(
            out, n_samples=n_out, dt_ms=sim_dt_ms * downsample,
            model_ids=ids, model_splits=list(splits) if splits is not None else ["unknown"] * len(specs),
            model_parameters=[dict(s.parameters) for s in specs],
            protocol_json=[p.to_json() for p in flat],
            row_model=row_model, row_protocol=row_protocol,
            row_amp_nA=np.array([flat[k].amp_nA for k in row_protocol]),
            attrs=_provenance(specs, sim_dt_ms, downsample, signature) | {"seed_per_model": int(seed_per_model)},
        )
    journal.mkdir(parents=True, exist_ok=True)

    with _open_h5(out, "r+") as f:
        lost = _unverified_done_rows(f)
        if lost.size:
            log.warning("%d row(s) marked done hold no finite data (e.g. %s); they are restored from the journal or "
                        "simulated again", lost.size, lost[:5].tolist())
            f["done"][np.sort(lost)] = 0
            f.flush()
        done = f["done"][:].astype(bool)
        recovered = [r for r in _journal_read(journal) if not done[r["row"]]]
        if recovered:
            log.info("recovered %d finished simulations from the journal", len(recovered))
            _write_rows(f, recovered)
            f.flush()
            done = f["done"][:].astype(bool)
        pending = [j for j in jobs if not done[j["row"]]]
        chunks = [pending[i:i + chunk_size] for i in range(0, len(pending), chunk_size)]
        n_workers = n_workers or os.cpu_count() or 1
        run = _make_engine(engine, n_workers)
        with tqdm(total=len(jobs), initial=len(jobs) - len(pending), disable=not progress,
                  unit="sim", desc=f"simulating → {out.name}") as bar:
            for results in run(chunks, str(journal)):
                bar.update(_write_rows(f, results))
                f.flush()
        if not f["done"][:].all():
            raise DatasetError(f"{out}: some simulations did not finish; run the same command again to resume")
        lost = _unverified_done_rows(f)
        if lost.size:  # never drop the journal while a row lacks its data
            f["done"][np.sort(lost)] = 0
            raise DatasetError(f"{out}: rows {lost[:5].tolist()} did not survive on disk; run the same command again "
                               "(they are restored from the journal or simulated again)")
        f.attrs["complete"] = True
        f.flush()
    shutil.rmtree(journal.parent, ignore_errors=True)
    return out
