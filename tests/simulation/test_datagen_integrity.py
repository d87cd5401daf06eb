"""Datagen never loses data: one writer per output, a full disk, rows that did not survive, busy files."""
import errno
import subprocess
import sys
import textwrap
import time

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


def test_disk_full_is_reported_and_a_rerun_completes_without_losing_a_row(tmp_path, monkeypatch):
    reference = datagen.generate(_specs(), _steps(), tmp_path / "ref.h5", engine="serial", progress=False)
    out = tmp_path / "d.h5"
    real_store, calls = datagen._store_row, []

    def disk_fills_up(f, r):
        calls.append(r["row"])
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
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
