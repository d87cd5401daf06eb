"""Network mode on 2 MPI ranks gives the same spikes and surrogate voltages as on 1 rank (real mpiexec)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # real mpiexec runs

ROOT = Path(__file__).resolve().parent.parent
MPIEXEC = shutil.which("mpiexec")
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe"]


def neuron_sees_two_ranks() -> bool:
    """NEURON dlopens libmpi at run time: with mpiexec but no MPI library (Debian: libopenmpi-dev
    provides libmpi.so) every rank runs alone (nhost 1)."""
    probe = "from neuron import h; h.nrnmpi_init(); print('NHOST', int(h.ParallelContext().nhost()))"
    try:
        out = subprocess.run([MPIEXEC, *MPI_FLAGS, "-n", "2", sys.executable, "-c", probe], capture_output=True,
                             text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "NHOST 2" in out


def run_example(tmp_path: Path, ranks: int, *extra: str) -> dict:
    out = tmp_path / f"spikes_{ranks}{'_'.join(extra)}.json"
    cmd = [sys.executable, str(ROOT / "examples" / "network_swap.py"), "--quick", "--surrogate-only",
           "--spikes-out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same torch thread count per process: bit-identical FNO sums
    if ranks > 1:
        cmd = [MPIEXEC, *MPI_FLAGS, "-x", "OMP_NUM_THREADS", "-n", str(ranks)] + cmd
    subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, timeout=300)
    return json.loads(out.read_text())


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (apt-get install openmpi-bin; .ci/run does)")
def test_two_ranks_match_one_rank(tmp_path):
    if not neuron_sees_two_ranks():
        pytest.skip("mpiexec runs, but NEURON finds no MPI library (nhost 1): apt-get install libopenmpi-dev "
                    "(.ci/run does)")
    one, two = run_example(tmp_path, 1), run_example(tmp_path, 2)
    assert one["ranks"] == 1 and two["ranks"] == 2
    assert len(one["spikes"]) > 20 and one["spikes"] == two["spikes"]
    assert sorted(one["pv_v"]) == sorted(two["pv_v"]) and len(one["pv_v"]) == 2
    for k in one["pv_v"]:  # the surrogate PV cells, driven across ranks, see the same input
        np.testing.assert_allclose(one["pv_v"][k], two["pv_v"][k], atol=1e-3)


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (apt-get install openmpi-bin; .ci/run does)")
def test_hybrid_cells_on_two_ranks_match_one_rank(tmp_path):
    """The NetPyNE swap to HybridCells, the same network on 1 and 2 ranks: the same spikes and PV voltages."""
    if not neuron_sees_two_ranks():
        pytest.skip("mpiexec runs, but NEURON finds no MPI library (nhost 1): apt-get install libopenmpi-dev")
    one, two = run_example(tmp_path, 1, "--hybrid"), run_example(tmp_path, 2, "--hybrid")
    assert one["ranks"] == 1 and two["ranks"] == 2
    assert len(one["spikes"]) > 20 and one["spikes"] == two["spikes"]
    for k in one["pv_v"]:
        np.testing.assert_allclose(one["pv_v"][k], two["pv_v"][k], atol=1e-6)


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (apt-get install openmpi-bin; .ci/run does)")
def test_generate_nrn_bb_on_two_ranks_gives_the_pool_engine_rows(tmp_path):
    """`generate --engine nrn-bb` under mpiexec -n 2 (calibration included) writes exactly the pool engine's rows."""
    if not neuron_sees_two_ranks():
        pytest.skip("mpiexec runs, but NEURON finds no MPI library (nhost 1): apt-get install libopenmpi-dev")
    from noble_neuron.data.dataset import open_dataset

    protocols = tmp_path / "steps.yaml"
    protocols.write_text("protocols:\n" + "".join(
        f"  - {{kind: long_square, step_nA: {a}, delay_ms: 10, dur_ms: 60, total_ms: 80}}\n" for a in (-0.05, 0.1, 0.2)))
    common = ["--models", str(ROOT / "examples" / "own_model" / "models.json"), "--protocol", str(protocols),
              "--v-init", "auto", "--no-progress", "--no-features"]
    cli = [sys.executable, "-m", "noble_neuron.cli", "generate"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    mpi = subprocess.run([MPIEXEC, *MPI_FLAGS, "-n", "2", *cli, *common, "--engine", "nrn-bb", "--out",
                          str(tmp_path / "mpi.h5")], capture_output=True, text=True, env=env, timeout=300)
    assert mpi.returncode == 0, mpi.stderr[-3000:]
    subprocess.run([*cli, *common, "--engine", "pool", "--workers", "2", "--out", str(tmp_path / "pool.h5")],
                   capture_output=True, text=True, check=True, env=env, timeout=300)
    a, b = open_dataset(tmp_path / "mpi.h5"), open_dataset(tmp_path / "pool.h5")
    assert a.complete and b.complete and a.attrs["signature"] == b.attrs["signature"]
    np.testing.assert_array_equal(a.read(range(12)), b.read(range(12)))
    np.testing.assert_array_equal(a.model_v_init_mV, b.model_v_init_mV)
