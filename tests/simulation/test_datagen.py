"""Dataset generation with real NEURON: contents, provenance, resume after kill -9, bad files."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import DATA, short_step
from noble_neuron.simulation.datagen import generate
from noble_neuron.data.dataset import DatasetError, open_dataset
from noble_neuron.detailed.spec import CellSpec

def _specs(n=2):
    return [CellSpec(f"m{i}", str(DATA / "ball_stick.hoc"), "BallStick", None,
                     {"somatic.gnabar_hh": 0.12 - 0.01 * i, "global.celsius": 6.3}) for i in range(n)]


def test_generate_writes_complete_dataset_with_provenance(tmp_path):
    protocols = [short_step(a) for a in (-0.05, 0.0, 0.1, 0.3)]
    out = generate(_specs(), protocols, tmp_path / "d.h5", splits=["train", "unseen"], engine="serial",
                   progress=False)
    ds = open_dataset(out)
    assert ds.complete and len(ds) == 8
    assert ds.model_ids == ["m0", "m1"] and ds.model_splits == ["train", "unseen"]
    assert ds.dt_ms == pytest.approx(0.06)
    assert json.loads(ds.attrs["units"])["voltage"] == "mV"
    assert ds.attrs["neuron_version"].startswith("9.")
    assert len(ds.attrs["template_sha256"]) == 64
    v = ds.read(ds.rows(model_id="m1"))
    assert v.shape == (4, 1000) and np.isfinite(v).all()
    np.testing.assert_allclose(ds.amp_nA[ds.rows(model_id="m0")], [-0.05, 0.0, 0.1, 0.3])
    stim = ds.read(ds.rows(model_id="m0"), "stimulus_nA")
    assert stim[3].max() == pytest.approx(0.3)
    assert not (tmp_path / "d.h5.journal").exists()  # journal removed once complete


def test_pool_engine_matches_serial(tmp_path):
    protocols = [short_step(a) for a in (0.0, 0.2)]
    serial = generate(_specs(), protocols, tmp_path / "s.h5", engine="serial", progress=False)
    pooled = generate(_specs(), protocols, tmp_path / "p.h5", engine="pool", n_workers=2, progress=False)
    a, b = open_dataset(serial), open_dataset(pooled)
    np.testing.assert_array_equal(a.read(range(4)), b.read(range(4)))


def test_nrn_bulletin_board_engine_serial(tmp_path):
    protocols = [short_step(a) for a in (0.0, 0.2)]
    out = generate(_specs(1), protocols, tmp_path / "bb.h5", engine="nrn-bb", progress=False)
    assert open_dataset(out).complete


def test_existing_file_for_other_protocols_is_refused(tmp_path):
    out = tmp_path / "d.h5"
    generate(_specs(1), [short_step(0.1)], out, engine="serial", progress=False)
    with pytest.raises(DatasetError, match="signature mismatch"):
        generate(_specs(1), [short_step(0.2)], out, engine="serial", progress=False)
    generate(_specs(1), [short_step(0.2)], out, engine="serial", progress=False, overwrite=True)
    assert open_dataset(out).amp_nA[0] == pytest.approx(0.2)


def test_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file at all" * 100)
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        open_dataset(bad)
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        generate(_specs(1), [short_step(0.1)], bad, engine="serial", progress=False)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DatasetError, match="not a noble_neuron dataset"):
        open_dataset(foreign)
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "missing.h5")


def test_truncated_file_is_rebuilt_from_journal(tmp_path):
    """A half-written HDF5 (e.g. killed mid-flush) is rebuilt from the journal, keeping finished rows."""
    out = tmp_path / "d.h5"
    protocols = [short_step(a) for a in (0.0, 0.1, 0.2)]
    from noble_neuron.simulation import datagen
    # run 2 of 3 rows, then stop as if interrupted
    calls = []

    def interrupted(chunks, journal):
        for chunk in chunks[:2]:
            calls.append(chunk[0]["row"])
            yield datagen.run_chunk(chunk, journal)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(_specs(1), protocols, out, engine=interrupted, chunk_size=1, progress=False)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 3])  # truncate the HDF5 file
    ran = []

    def counting(chunks, journal):
        for chunk in chunks:
            ran.append(chunk[0]["row"])
            yield datagen.run_chunk(chunk, journal)

    generate(_specs(1), protocols, out, engine=counting, chunk_size=1, progress=False)
    assert ran == [2]  # the two finished simulations were recovered, not re-run
    assert open_dataset(out).complete


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import short_step
    from noble_neuron.simulation.datagen import generate
    from noble_neuron.detailed.spec import CellSpec
    spec = CellSpec("m0", {template!r}, "BallStick", None, {{"somatic.gnabar_hh": 0.12}})
    generate([spec], [short_step(0.01 * k, total_ms=3000.0) for k in range(12)], sys.argv[1],
             engine="serial", chunk_size=1, progress=False)
""")


@pytest.mark.slow
def test_resume_after_kill_9_keeps_finished_rows(tmp_path):
    out = tmp_path / "killed.h5"
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(Path(__file__).resolve().parent.parent), template=str(DATA / "ball_stick.hoc")))
    proc = subprocess.Popen([sys.executable, str(script), str(out)], start_new_session=True)
    journal = out.with_name(out.name + ".journal")
    deadline = time.time() + 120
    while time.time() < deadline and len(list(journal.glob("*/row_*.npy"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(journal.glob("*/row_*.npy"))
    assert 3 <= len(finished) < 12, "the run must be killed midway"
    before = {int(f.stem.split("_")[1]): np.load(f)[0] for f in finished}

    from noble_neuron.simulation import datagen
    ran = []

    def counting(chunks, journal_dir):
        for chunk in chunks:
            ran.append(chunk[0]["row"])
            yield datagen.run_chunk(chunk, journal_dir)

    spec = CellSpec("m0", str(DATA / "ball_stick.hoc"), "BallStick", None, {"somatic.gnabar_hh": 0.12})
    generate([spec], [short_step(0.01 * k, total_ms=3000.0) for k in range(12)], out, engine=counting,
             chunk_size=1, progress=False)
    ds = open_dataset(out)
    assert ds.complete and len(ds) == 12
    assert not set(ran) & set(before), "finished simulations must not be run twice"
    for row, v in before.items():
        np.testing.assert_array_equal(ds.read([row])[0], v)


def test_seed_per_model_gives_each_model_its_own_noise(tmp_path):
    """seed_per_model: seeded protocols differ between models (more distinct inputs per simulation)."""
    from noble_neuron.data.dataset import open_dataset
    from noble_neuron.stimuli.protocols import OUNoise

    noise = OUNoise(mean_nA=0.05, sigma_nA=0.05, tau_ms=5.0, seed=3, delay_ms=5.0, dur_ms=30.0, total_ms=60.0)
    step = short_step(0.1, total_ms=60.0)
    same = open_dataset(generate(_specs(), [noise, step], tmp_path / "same.h5", engine="serial", progress=False))
    own = open_dataset(generate(_specs(), [noise, step], tmp_path / "own.h5", engine="serial", progress=False,
                                seed_per_model=101))
    x_same, x_own = same.read(same.rows(), "stimulus_nA"), own.read(own.rows(), "stimulus_nA")
    np.testing.assert_array_equal(x_same[0], x_same[2])  # rows: model 0 (noise, step), model 1 (noise, step)
    assert np.abs(x_own[0] - x_own[2]).max() > 0.01  # model 1's noise has its own seed
    np.testing.assert_array_equal(x_own[0], x_same[0])  # model 0 keeps the base seed
    np.testing.assert_array_equal(x_own[3], x_same[3])  # unseeded protocols are unchanged
    assert own.attrs["seed_per_model"] == 101 and same.attrs["seed_per_model"] == 0
    with pytest.raises(ValueError, match="seed_per_model"):
        generate(_specs(), [noise], tmp_path / "bad.h5", engine="serial", progress=False, seed_per_model=-1)


_POOL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import short_step
    from noble_neuron.simulation.datagen import generate
    from noble_neuron.detailed.spec import CellSpec
    if __name__ == "__main__":  # the spawned workers import this file too
        specs = [CellSpec(f"m{{i}}", {template!r}, "BallStick", None, {{"somatic.gnabar_hh": 0.12}})
                 for i in range(2)]
        try:
            generate(specs, [short_step(0.01 * k, total_ms=3000.0) for k in range(12)], sys.argv[1],
                     engine="pool", n_workers=2, chunk_size=1, progress=False)
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
            sys.exit(130)
""")


def _children(pid: int) -> list[int]:
    """Pids of the live processes whose parent is `pid` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["SIGTERM to the parent", "SIGKILL to the parent", "Ctrl-C to the process group"])
def test_a_killed_pool_run_leaves_no_process_behind(tmp_path, how):
    out = tmp_path / "pool.h5"
    script = tmp_path / "run.py"
    script.write_text(_POOL_SCRIPT.format(tests=str(Path(__file__).resolve().parent.parent),
                                          template=str(DATA / "ball_stick.hoc")))
    proc = subprocess.Popen([sys.executable, str(script), str(out)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = out.with_name(out.name + ".journal")
    deadline = time.time() + 120
    while time.time() < deadline and len(list(journal.glob("*/row_*.npy"))) < 2:
        time.sleep(0.05)
    children = _children(proc.pid)  # both pool workers and multiprocessing's resource tracker
    assert len(children) >= 2, children
    if how.startswith("Ctrl-C"):
        # Python drops a KeyboardInterrupt that lands in a weakref callback or __del__ ("Exception ignored"): like a
        # user, press Ctrl-C again until the run stops
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(1.0)
    else:
        os.kill(proc.pid, signal.SIGTERM if "TERM" in how else signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    assert not [c for c in children if _alive(c)], f"{how}: processes outlived the run"
    if how.startswith("Ctrl-C"):
        assert proc.returncode == 130 and "INTERRUPTED" in stdout, stdout + stderr
        # the workers leave Ctrl-C to the parent (Python's own note on a dropped interrupt aside)
        own = re.sub(r"Exception ignored in:.*?KeyboardInterrupt:\s*", "", stderr, flags=re.S)
        assert "Traceback" not in own, stderr


def test_a_refused_first_run_leaves_nothing_that_refuses_the_corrected_command(tmp_path):
    from noble_neuron.errors import SimulationError

    out = tmp_path / "d.h5"
    broken = CellSpec("broken", str(DATA / "needs_missing_mech.hoc"), "NeedsMissing", None, {})
    with pytest.raises(SimulationError, match="nn_not_compiled"):
        generate([broken], [short_step(0.1)], out, engine="serial", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no empty .h5, no journal
    generate(_specs(1), [short_step(0.1)], out, engine="serial", progress=False)  # the corrected command runs
    assert open_dataset(out).complete
    # a run that fails after finishing simulations keeps them (resume after the fix would be refused only if the
    # models changed; nothing finished is ever deleted)
    kept = tmp_path / "k.h5"
    with pytest.raises(SimulationError):
        generate(_specs(1) + [broken], [short_step(0.1)], kept, engine="serial", chunk_size=1, progress=False)
    assert kept.exists() and list(kept.with_name("k.h5.journal").glob("*/row_*.npy"))


def test_a_template_that_never_returns_is_stopped_naming_it(tmp_path):
    from noble_neuron.errors import SimulationError
    from noble_neuron.stimuli.protocols import LongSquare

    hoc = tmp_path / "hang.hoc"
    hoc.write_text("begintemplate Hang\npublic soma\ncreate soma\nproc init() { while (1) { } }\nendtemplate Hang\n")
    out = tmp_path / "h.h5"
    start = time.time()
    with pytest.raises(SimulationError, match=r"no simulation finished in 2 s \(still running: hung row 0\).*"
                                              r"--sim-timeout"):
        generate([CellSpec("hung", str(hoc), "Hang", None, {})],
                 [LongSquare(step_nA=0.1, delay_ms=5.0, dur_ms=10.0, total_ms=20.0)], out, engine="pool",
                 n_workers=1, progress=False, sim_timeout_s=2.0)
    assert time.time() - start < 60
    assert not out.exists()  # nothing finished: nothing left to refuse the fixed model with
