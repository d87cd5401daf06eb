"""Datagen never loses data: one writer per output, a full disk, rows that did not survive, busy files."""
import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import DATA
from noble_neuron.simulation import datagen
from noble_neuron.data.dataset import DatasetBusyError, DatasetError, open_dataset
from noble_neuron.stimuli.protocols import LongSquare
from noble_neuron.stimuli.presets import long_square_draws
from noble_neuron.detailed.spec import CellSpec

SPEC_CODE = f"""
from noble_neuron.detailed.spec import CellSpec
from noble_neuron.stimuli.protocols import LongSquare
specs = [CellSpec("m0", {str(DATA / "ball_stick.hoc")!r}, "BallStick", None,
                  {{"somatic.gnabar_hh": 0.12, "global.celsius": 6.3}})]
protocols = [LongSquare(step_nA=0.02 * k, delay_ms=10.0, dur_ms=1500.0, total_ms=1600.0) for k in range(8)]
"""


def _specs():
    return [CellSpec("m0", str(DATA / "ball_stick.hoc"), "BallStick", None,
                     {"somatic.gnabar_hh": 0.12, "global.celsius": 6.3})]


def _steps(n=5):
    return [LongSquare(step_nA=0.05 * k, delay_ms=10.0, dur_ms=40.0, total_ms=60.0) for k in range(n)]


def test_a_second_writer_on_the_same_output_is_refused_and_the_first_finishes_intact(tmp_path):
    out = tmp_path / "d.h5"
    writer = textwrap.dedent(SPEC_CODE) + textwrap.dedent(f"""
        from noble_neuron.simulation.datagen import generate
        generate(specs, protocols, {str(out)!r}, engine="serial", progress=False)
        print("first done")
    """)
    first = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "d.h5.lock"
    deadline = time.time() + 60
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.05)
    assert lock.exists(), "the first writer never took its lock"
    script = textwrap.dedent(SPEC_CODE) + textwrap.dedent(f"""
        from noble_neuron.simulation.datagen import generate
        from noble_neuron.simulation.writer_lock import WriterLockError
        try:
            generate(specs, protocols, {str(out)!r}, engine="serial", progress=False)
        except WriterLockError as exc:
            print("REFUSED", exc)
    """)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first writer finished before the second started: make its work longer"
    assert "REFUSED" in second.stdout and f"pid {first.pid}" in second.stdout, second.stdout + second.stderr
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    ds = open_dataset(out)
    assert ds.complete and len(ds) == 8 and np.isfinite(ds.read(range(8))).all()
    assert not (tmp_path / "d.h5.corrupt").exists() and not lock.exists()


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   OSError("Can't write data (file write failed: time = Mon Dec  7, filename = "
                                           "'d.h5', file descriptor = 5, errno = 0, error message = 'Success', buf = "
                                           "0x1, total write size = 17166, bytes this sub-write = 17166, bytes "
                                           "actually written = 12256, offset = 0): 17166 requested and 12256 "
                                           "written")],
                         ids=["ENOSPC", "hdf5-short-write"])
def test_disk_full_is_reported_and_a_rerun_completes_without_losing_a_row(tmp_path, monkeypatch, error):
    reference = datagen.generate(_specs(), _steps(), tmp_path / "ref.h5", engine="serial", progress=False)
    out = tmp_path / "d.h5"
    real_store, calls = datagen._store_row, []

    def disk_fills_up(f, r):
        calls.append(r["row"])
        if len(calls) == 3:
            raise error
        real_store(f, r)

    monkeypatch.setattr(datagen, "_store_row", disk_fills_up)
    with pytest.raises(DatasetError, match="no space left on device.*run the same command again"):
        datagen.generate(_specs(), _steps(), out, engine="serial", chunk_size=1, progress=False)
    with h5py.File(out, "r") as f:
        done = f["done"][:].astype(bool)
        assert done.sum() == 2 and np.isfinite(f["voltage_mV"][np.flatnonzero(done)]).all()
    assert list((tmp_path / "d.h5.journal").glob("*/row_0000002.npy"))  # the failed row's copy is kept
    monkeypatch.setattr(datagen, "_store_row", real_store)
    datagen.generate(_specs(), _steps(), out, engine="serial", progress=False)
    a, b = open_dataset(out), open_dataset(reference)
    assert a.complete
    np.testing.assert_array_equal(a.read(range(5)), b.read(range(5)))
    assert not (tmp_path / "d.h5.journal").exists()


def test_rows_marked_done_without_data_are_restored_not_trusted(tmp_path):
    out = tmp_path / "d.h5"
    datagen.generate(_specs(), _steps(), out, engine="serial", progress=False)
    good = open_dataset(out).read(range(5))
    with h5py.File(out, "r+") as f:  # what an older version could leave after a full disk
        f["voltage_mV"][1] = np.nan
        f.attrs["complete"] = False
    datagen.generate(_specs(), _steps(), out, engine="serial", progress=False)
    ds = open_dataset(out)
    assert ds.complete
    np.testing.assert_array_equal(ds.read(range(5)), good)


def test_a_dataset_open_in_another_process_is_busy_not_corrupt(tmp_path):
    out = tmp_path / "d.h5"
    datagen.generate(_specs(), _steps(2), out, engine="serial", progress=False)
    with h5py.File(out, "r") as f:
        f.attrs["complete"]  # noqa: B018 - touch
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import h5py, sys, time
        f = h5py.File({str(out)!r}, "r+")
        print("open", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DatasetBusyError, match="open in another process"):
            open_dataset(out)
        (tmp_path / "d.h5.journal" / "x").mkdir(parents=True)  # a journal exists: the old code renamed the file
        with pytest.raises(DatasetBusyError):
            datagen.generate(_specs(), _steps(2), out, engine="serial", progress=False)
        assert out.exists() and not (tmp_path / "d.h5.corrupt").exists()
    finally:
        holder.kill()
        holder.wait()


def test_output_in_a_missing_folder_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        datagen.generate(_specs(), _steps(2), tmp_path / "nope" / "d.h5", engine="serial", progress=False)
    assert not (tmp_path / "nope").exists()
    # the message points the right way when --out is a folder, or its parent a file
    with pytest.raises(ValueError, match="is a folder; give the dataset file to write"):
        datagen.generate(_specs(), _steps(2), tmp_path, engine="serial", progress=False)
    # a current no neuron takes (pA written as nA) is refused before anything is simulated
    with pytest.raises(ValueError, match="injects more than 100 nA, which no neuron takes"):
        datagen.generate(_specs(), [LongSquare(step_nA=300.0, delay_ms=10.0, dur_ms=40.0, total_ms=60.0)],
                         tmp_path / "a.h5", engine="serial", progress=False)
    assert not (tmp_path / "a.h5").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="afile is a file, not a folder"):
        datagen.generate(_specs(), _steps(2), tmp_path / "afile" / "d.h5", engine="serial", progress=False)


def test_a_read_only_dataset_is_named_read_only_not_corrupt(tmp_path, monkeypatch):
    from noble_neuron.data.dataset import open_h5

    out = datagen.generate(_specs(), _steps(2), tmp_path / "d.h5", engine="serial", progress=False)
    with open_h5(out, "r") as f:  # reading needs no write permission
        assert f.attrs["complete"]
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == out and m == os.W_OK else real_access(p, m))
    with pytest.raises(DatasetError, match="is read-only .*chmod u\\+w"):
        open_h5(out, "r+")
    with pytest.raises(DatasetError, match="is a folder, not a dataset file"):
        open_h5(tmp_path, "r")


def test_per_model_amplitude_draws_are_continuous_distinct_and_stored_per_row(tmp_path):
    draws = [long_square_draws(i, n_hyper=1, n_depol=3) for i in range(2)]
    amps = [[p.step_nA for p in d] for d in draws]
    assert amps[0] != amps[1] and all(a == sorted(a) for a in amps)
    assert all(-0.11 <= a < 0.0 for a in (amps[0][0], amps[1][0])) and max(max(a) for a in amps) < 0.5
    specs = [CellSpec(f"m{i}", str(DATA / "ball_stick.hoc"), "BallStick", None,
                      {"somatic.gnabar_hh": 0.12, "global.celsius": 6.3}) for i in range(2)]
    short = [[LongSquare(step_nA=p.step_nA, delay_ms=10.0, dur_ms=40.0, total_ms=60.0) for p in d] for d in draws]
    ds = open_dataset(datagen.generate(specs, short, tmp_path / "d.h5", engine="serial", progress=False))
    assert ds.complete and len(ds) == 8
    np.testing.assert_allclose(ds.amp_nA, amps[0] + amps[1])
    assert ds.model_index.tolist() == [0] * 4 + [1] * 4
    with pytest.raises(ValueError, match="2 lists for 1 models"):
        datagen.generate(specs[:1], short, tmp_path / "e.h5", engine="serial", progress=False)


def test_a_full_disk_that_hdf5_reports_only_as_a_bad_read_back_gets_the_disk_message(tmp_path, monkeypatch):
    """HDF5 buffers writes: on a real full disk (a 600 KB tmpfs) a row can read back wrong before any write fails."""
    calls = []
    real_store = datagen._store_row

    def lost(f, r):
        calls.append(r["row"])
        if len(calls) == 2:
            raise DatasetError(f"row {r['row']} read back from the dataset differs from what was written")
        real_store(f, r)

    monkeypatch.setattr(datagen, "_store_row", lost)
    monkeypatch.setattr(datagen, "disk_nearly_full", lambda folder: True)
    with pytest.raises(DatasetError, match="no space left on device.*run the same command again"):
        datagen.generate(_specs(), _steps(), tmp_path / "d.h5", engine="serial", chunk_size=1, progress=False)
    monkeypatch.setattr(datagen, "disk_nearly_full", lambda folder: False)  # a real read-back failure says so
    calls.clear()
    with pytest.raises(DatasetError, match="read back from the dataset differs"):
        datagen.generate(_specs(), _steps(), tmp_path / "e.h5", engine="serial", chunk_size=1, progress=False)


def test_hdf5_reports_of_refused_writes_are_quiet_and_everything_else_is_not(capsys):
    import sys as _sys

    from noble_neuron.simulation.output_file import quiet_failed_hdf5_writes

    refused = RuntimeError("Can't decrement id ref count (file write failed: errno = 28, error message = 'No space "
                           "left on device')")
    other = RuntimeError("something else")
    before = (_sys.excepthook, _sys.unraisablehook)
    with quiet_failed_hdf5_writes():
        _sys.excepthook(RuntimeError, refused, None)  # the traceback Cython prints as h5py frees an object
        _sys.excepthook(RuntimeError, other, None)
    err = capsys.readouterr().err
    assert "file write failed" not in err and "something else" in err
    assert (_sys.excepthook, _sys.unraisablehook) == before  # restored
