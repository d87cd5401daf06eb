"""Examples and benchmarks must not rot: run their --quick paths."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # subprocesses running the examples and benchmarks

ROOT = Path(__file__).resolve().parent.parent


def run_script(relpath: str, *args) -> str:
    """Run an example or benchmark script with this Python; its stdout (raises if it fails)."""
    return subprocess.run([sys.executable, str(ROOT / relpath), *map(str, args)], capture_output=True, text=True,
                          check=True).stdout


def test_family_features_example_quick(tmp_path):
    out = run_script("examples/01_family_features.py", "--quick", "--out-dir", tmp_path)
    assert "train:" in out
    assert (tmp_path / "family_fi_curves.png").stat().st_size > 10_000
    assert (tmp_path / "family_feature_spread.png").stat().st_size > 10_000


def test_datagen_benchmark_quick():
    out = run_script("benchmarks/datagen.py", "--quick")
    assert '"orchestration_overhead_serial"' in out


def test_quickstart_quick(tmp_path):
    png = tmp_path / "quickstart.png"
    out = run_script("examples/quickstart.py", "--quick", "--out", png)
    assert "relative L2 error of the surrogate trace" in out and "FI curve (3 amplitudes)" in out
    rmse = float(out.split("RMSE ")[1].split(" mV")[0])
    assert rmse < 0.5  # recorded soma v follows predict()
    assert png.stat().st_size > 20_000


def test_speedup_benchmark_quick(tmp_path):
    out_json = tmp_path / "speedup.json"
    out = run_script("benchmarks/speedup.py", "--quick", "--out", out_json)
    assert "speedup_batched_cpu" in out
    res = json.loads(out_json.read_text())
    assert res["detailed"]["per_trace_s_fixed_step"] > 0.1  # a real 515 ms multicompartment solve
    assert res["speedup_batched_cpu"] == res["detailed"]["per_trace_s_fixed_step"] / \
        res["surrogate"]["cpu"]["per_trace_s_by_batch"]["8"]
    assert 0 <= res["surrogate"]["cpu"]["accuracy_same_traces"]["rel_l2_mean"] < 1
    assert res["surrogate_cell_in_neuron"]["n_cells"] == 4 and "cpu" in res["machine"]
    assert (tmp_path / "speedup.png").stat().st_size > 10_000


def test_network_benchmark_quick(tmp_path):
    out_json = tmp_path / "network.json"
    out = run_script("benchmarks/network.py", "--quick", "--out", out_json)
    res = json.loads(out_json.read_text())
    assert res["n_cells"] == 2 and res["fno_calls"] > 0 and res["wall_s_detailed_estimate"] > 0
    assert "gamma_2ms_median" in out


def test_network_arms_and_gamma_benchmarks_quick(tmp_path):
    """Each arm in its own process; every arm scored against the detailed one; the gamma network's PNG."""
    out_json = tmp_path / "arms.json"
    run_script("benchmarks/network_arms.py", "--quick", "--arms", "hybrid,reduce", "--out", out_json)
    res = json.loads(out_json.read_text())
    assert res["n_cells"] == 2 and res["detailed"]["segments_per_cell"] == 237
    assert res["arms"]["hybrid"]["segments_per_cell"] == 7 and res["arms"]["hybrid"]["wall_s"] > 0
    assert res["arms"]["reduce"]["segments_per_cell"] < 60 and "gamma_2ms_median" in res["arms"]["reduce"]
    gamma_json = tmp_path / "gamma.json"
    run_script("benchmarks/gamma_network.py", "--quick", "--arms", "hybrid", "--out", gamma_json)
    g = json.loads(gamma_json.read_text())
    assert set(g["arms"]) == {"detailed", "hybrid"} and g["arms"]["hybrid"]["rate_Hz_mean"] > 0
    assert gamma_json.with_suffix(".png").stat().st_size > 20_000


def test_network_swap_example_quick(tmp_path):
    png = tmp_path / "swap.png"
    out = run_script("examples/network_swap.py", "--quick", "--out", png)
    assert "detailed PV" in out and "surrogate PV" in out
    assert png.stat().st_size > 20_000


def test_network_rollout_benchmark_runs_on_a_dataset(tmp_path, tiny_dataset, tiny_streaming):
    out_json = tmp_path / "rollout.json"
    run_script("benchmarks/network_rollout.py", "--data", tiny_dataset, "--checkpoint", tiny_streaming[0],
               "--out", out_json)
    res = json.loads(out_json.read_text())
    ls = res["per_kind"]["long_square"]
    assert res["n_models"] == 1 and ls["n_traces"] == 10 and ls["spikes_detailed"] > 0
    assert 0 <= ls["clipped_voltage_rmse_mV_median"] < 30.0
    assert res["epoch_ms"] == pytest.approx(0.6) and res["spike_logit_shift"] == pytest.approx(np.log(10.0))


def test_recording_to_neuron_example_quick(tmp_path):
    """A detailed cell's sweeps through NWB, measure and twins, back in NEURON: the measured neuron and its best twin
    fire close to NEURON's count at a step that was not recorded."""
    png = tmp_path / "recording.png"
    out = run_script("examples/02_recording_to_neuron.py", "--quick", "--out", png)
    neuron = int(out.split("(NEURON ")[1].split(")")[0])
    measured = int(out.split("measured surrogate (neuron=): ")[1].split(" spikes")[0])
    twin = int(out.split("(from_twins): ")[1].split(" spikes")[0])
    assert abs(measured - neuron) <= 3 and abs(twin - neuron) <= 5
    assert png.stat().st_size > 20_000
