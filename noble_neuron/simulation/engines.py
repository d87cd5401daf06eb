"""Where the simulations of `generate` run: the worker side (one cell per process, calibration
jobs, the per-row journal) and the engines that map job chunks onto processes.

Engines: "serial", "pool" (local process pool) and "nrn-bb" (NEURON ParallelContext bulletin
board, serially or across MPI ranks). Any other cluster engine is a callable that takes a list
of job chunks and the journal folder and yields results of `run_chunk`.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..detailed.spec import CellSpec
from ..errors import SimulationError
from ..stimuli.protocols import protocol_from_dict

__all__ = ["Engine", "run_chunk", "journal_write", "journal_read", "bulletin_board", "make_engine"]

log = logging.getLogger(__name__)

Engine = Callable[[list[list[dict]]], Iterator[list[dict]]]


# ---------------------------------------------------------------- worker side
_worker_cell: tuple[str, object] | None = None


def worker_cell_for(spec: CellSpec):
    from ..detailed.instantiate import instantiate_cell

    global _worker_cell
    if _worker_cell is None or _worker_cell[0] != spec.model_id:
        _worker_cell = None  # drop the previous cell first: only one cell may exist
        _worker_cell = (spec.model_id, instantiate_cell(spec))
    return _worker_cell[1]


def calibrate_one(job: dict) -> dict:
    """A calibration job: the model's rest (if asked) and rheobase (if asked)."""
    from neuron import h

    from .calibration import resting_potential, rheobase
    from ..detailed.instantiate import apply_globals

    spec = CellSpec.from_dict(job["spec"])
    cell = worker_cell_for(spec)
    apply_globals(h, spec.parameters, spec.model_id)  # another model may have changed them since
    v_init = job["v_init"]
    v0 = resting_potential(spec, cell) if v_init == "auto" else (None if v_init == "template" else float(v_init))
    timing = job.get("rheobase_timing")
    i_thr = None if timing is None else rheobase(spec, cell, v0, steady_state=v_init == "auto",
                                                 sim_dt_ms=job["sim_dt_ms"], **timing)
    return {"model": job["model"], "v_init_mV": v0, "rheobase_nA": i_thr}


def run_chunk(jobs: list[dict], journal_dir: str | None = None) -> list[dict]:
    """Run jobs (usually consecutive rows of one model) in this process; journal each result."""
    from .simulate import simulate

    results = []
    for job in jobs:
        if "calibrate" in job:
            results.append(calibrate_one(job))
            continue
        spec = CellSpec.from_dict(job["spec"])
        res = simulate(spec, protocol_from_dict(job["protocol"]), job["sim_dt_ms"], job["downsample"],
                       cell=worker_cell_for(spec), v_init_mV=job.get("v_init_mV"),
                       steady_state=job.get("steady_state", False))
        out = {"row": job["row"], "v_mV": res.v_mV, "i_nA": res.i_nA, "wall_s": res.wall_s}
        if journal_dir:
            journal_write(Path(journal_dir), out)
        results.append(out)
    return results


def journal_write(journal: Path, result: dict) -> None:
    final = journal / f"row_{result['row']:07d}.npy"
    tmp = journal / f".row_{result['row']:07d}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, np.stack([result["v_mV"], result["i_nA"]]).astype(np.float32))
        np.save(fh, np.float32(result["wall_s"]))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def journal_read(journal: Path) -> Iterator[dict]:
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
def serial_engine(chunks, journal_dir):
    for chunk in chunks:
        yield run_chunk(chunk, journal_dir)


def _pool_worker_init(parent_pid: int) -> None:
    """A pool worker leaves Ctrl-C to its parent (which stops the pool) and dies with it: on Linux the kernel
    kills it when the parent process ends however it ends (kill -TERM or -9, a scheduler's wall-time limit)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def pool_engine(n_workers: int, sim_timeout_s: float | None = None):
    """Chunks on `n_workers` spawned processes; with `sim_timeout_s`, a run in which no chunk finishes within that
    many seconds per simulation of the longest chunk is stopped with a SimulationError naming the chunks in flight
    (a template constructor or a mechanism that never returns would otherwise hang it forever)."""
    def engine(chunks, journal_dir):
        pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context("spawn"),
                                   initializer=_pool_worker_init, initargs=(os.getpid(),))
        try:
            pending = {pool.submit(run_chunk, chunk, journal_dir): chunk for chunk in chunks}
            patience = None if not sim_timeout_s else sim_timeout_s * max((len(c) for c in chunks), default=1)
            while pending:
                done, _ = wait(pending, timeout=patience, return_when=FIRST_COMPLETED)
                if not done:
                    raise SimulationError(_stalled_message(pending, patience, n_workers))
                for fut in done:
                    pending.pop(fut)
                    yield fut.result()
        except BaseException:  # Ctrl-C, an error, or the consumer stopped: the workers stop now, not after their chunk
            workers = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for w in workers:
                w.terminate()
            for w in workers:
                w.join(timeout=5)
            raise
        pool.shutdown()
    return engine


def _stalled_message(pending: dict, patience_s: float, n_workers: int) -> str:
    running = [f for f in pending if f.running()][:n_workers] or list(pending)[:n_workers]
    what = "; ".join(f"{job['spec']['model_id']} " + (f"row {job['row']}" if "row" in job else "(calibration)")
                     for fut in running for job in pending[fut][:3])
    return (f"no simulation finished in {patience_s:g} s (still running: {what}): a template constructor, a "
            "mechanism or a protocol that never returns? Fix the model, or give the simulations more time with "
            "--sim-timeout <seconds per simulation> (0: wait forever)")


_MPI_LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS")


def bulletin_board():
    """Start NEURON's bulletin board: ranks 1…N−1 under mpiexec serve jobs here until rank 0 calls
    ``pc.done()`` (they never return); rank 0, or the only process, gets the ParallelContext."""
    from neuron import h

    if any(v in os.environ for v in _MPI_LAUNCHER_VARS):
        h.nrnmpi_init()  # only under a launcher: a singleton MPI init would break later mpiexec calls of this process
    pc = h.ParallelContext()
    pc.runworker()
    return pc


def nrn_bulletin_board_engine(chunks, journal_dir):
    """NEURON ParallelContext bulletin board (started by `bulletin_board`): serially, or across MPI ranks."""
    from neuron import h

    pc = h.ParallelContext()
    for chunk in chunks:
        pc.submit(run_chunk, chunk, journal_dir or "")  # a None argument does not survive the bulletin board
    while pc.working():
        yield pc.pyret()


def make_engine(engine: str | Engine, n_workers: int, sim_timeout_s: float | None = None):
    """The engine by name ("serial" runs in this process and cannot time out; "pool" with one worker runs in a
    child process when `sim_timeout_s` is given, so a hung simulation can be stopped)."""
    if callable(engine):
        return engine
    if engine == "serial" or (engine == "pool" and n_workers <= 1 and not sim_timeout_s):
        return serial_engine
    if engine == "pool":
        return pool_engine(max(1, n_workers), sim_timeout_s)
    if engine == "nrn-bb":
        return nrn_bulletin_board_engine
    raise ValueError(f"unknown engine {engine!r}; use 'pool', 'serial', 'nrn-bb' or a callable")
