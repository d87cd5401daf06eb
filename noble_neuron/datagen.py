"""Generate a training dataset: map `simulate` over a model × protocol grid, resumably.

Crash safety: each worker writes every finished simulation to a journal file
(`<out>.journal/<signature>/row_NNNNNN.npy`, atomic rename) before returning it; the parent
copies rows into the HDF5 file and flushes. After a kill -9 the next run imports journal
rows missing from the HDF5 file (or rebuilds the file from the journal if HDF5 itself
was left unreadable), so no finished simulation is lost and none is run twice. The journal
is removed once the dataset is complete.

Engines: "serial", "pool" (local process pool, default) and "nrn-bb" (NEURON
ParallelContext bulletin board; under ``mpiexec -n N`` the ranks share the work, rank 0
writes the file). Any other cluster engine plugs in through `run_jobs(jobs, engine=<callable>)`:
a callable that takes a list of job dicts and yields results of `run_chunk`.
"""
from __future__ import annotations

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
from .dataset import DatasetError, create_dataset, _open_h5
from .protocols import Protocol, n_samples, protocol_from_dict
from .simulate import SIM_DT_MS, DOWNSAMPLE, CellSpec, file_sha256

__all__ = ["generate", "run_chunk", "make_jobs", "run_signature"]

log = logging.getLogger(__name__)

Engine = Callable[[list[list[dict]]], Iterator[list[dict]]]


def run_signature(specs: Sequence[CellSpec], protocols: Sequence[Protocol], sim_dt_ms: float, downsample: int,
                  seed_per_model: int = 0) -> str:
    """Hash of everything that determines the dataset's rows (models, template, protocols, dt, seeds)."""
    payload = {
        "models": [s.to_dict() | {"template_sha256": file_sha256(s.template_path)} for s in specs],
        "protocols": [p.to_dict() for p in protocols],
        "sim_dt_ms": sim_dt_ms,
        "downsample": downsample,
    }
    if seed_per_model:
        payload["seed_per_model"] = seed_per_model
    for m in payload["models"]:
        m.pop("template_path")  # the same template moved elsewhere is the same model
        m.pop("mechanisms_dir")
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def make_jobs(specs: Sequence[CellSpec], protocols: Sequence[Protocol], sim_dt_ms: float, downsample: int,
              seed_per_model: int = 0) -> list[dict]:
    """One job per (model, protocol), model-major, as plain picklable dicts.

    ``seed_per_model`` > 0: a seeded protocol (noise, barrage) of model i uses seed
    ``seed + i · seed_per_model``, so every model sees its own waveforms (for training
    input-driven surrogates on more distinct inputs at the same simulation cost)."""
    def for_model(p: Protocol, i: int) -> dict:
        d = p.to_dict()
        if seed_per_model and "seed" in d:
            d["seed"] = int(d["seed"]) + i * seed_per_model
        return d

    return [
        {"row": i * len(protocols) + j, "spec": s.to_dict(), "protocol": for_model(p, i),
         "sim_dt_ms": sim_dt_ms, "downsample": downsample}
        for i, s in enumerate(specs) for j, p in enumerate(protocols)
    ]


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
def _write_rows(f, results: Iterable[dict]) -> int:
    n = 0
    done = f["done"]
    for r in results:
        row = r["row"]
        f["voltage_mV"][row] = r["v_mV"]
        f["stimulus_nA"][row] = r["i_nA"]
        f["wall_s"][row] = r["wall_s"]
        done[row] = 1
        n += 1
    return n


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
    protocols: Sequence[Protocol],
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

    ``seed_per_model``: see `make_jobs` (stored as the dataset attribute of that name; the
    stored protocol table then holds each protocol's base seed).

    Raises DatasetError if `out` exists but was generated for other models/protocols/dt
    (use overwrite=True or another path) or is corrupt without a journal to rebuild it from.
    """
    from tqdm import tqdm

    out = Path(out)
    if not specs or not protocols:
        raise ValueError("generate needs at least one model and one protocol")
    ids = [s.model_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"model ids must be unique; duplicates: {sorted({i for i in ids if ids.count(i) > 1})}")
    totals = {p.total_ms for p in protocols}
    if len(totals) != 1:
        raise ValueError(f"all protocols of one dataset must share total_ms; got {sorted(totals)}")
    if not isinstance(downsample, int) or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    n_sim_samples = n_samples(protocols[0].total_ms, sim_dt_ms)  # validates sim_dt_ms
    n_out = n_samples(protocols[0].total_ms, sim_dt_ms * downsample)
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
            if "signature mismatch" in str(exc) or not journal.is_dir():
                raise
            log.warning("%s is unreadable (%s); rebuilding it from the journal %s", out, exc, journal)
            out.replace(out.with_name(out.name + ".corrupt"))
    if not out.exists():
        create_dataset(
            out, n_samples=n_out, dt_ms=sim_dt_ms * downsample,
            model_ids=ids, model_splits=list(splits) if splits is not None else ["unknown"] * len(specs),
            model_parameters=[dict(s.parameters) for s in specs],
            protocol_json=[p.to_json() for p in protocols],
            row_model=np.repeat(np.arange(len(specs)), len(protocols)),
            row_protocol=np.tile(np.arange(len(protocols)), len(specs)),
            row_amp_nA=np.tile([p.amp_nA for p in protocols], len(specs)),
            attrs=_provenance(specs, sim_dt_ms, downsample, signature) | {"seed_per_model": int(seed_per_model)},
        )
    journal.mkdir(parents=True, exist_ok=True)

    with _open_h5(out, "r+") as f:
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
        f.attrs["complete"] = True
    shutil.rmtree(journal.parent, ignore_errors=True)
    return out
