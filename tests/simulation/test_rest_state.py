"""The resting state every protocol starts from, for a cell where NEURON's big step alone does not converge.

tests/data/slow_rest.hoc: a soma with Na, Kv3, Ca_HVA, Ca accumulation and SK, and a 600 um apical dendrite with
strong Ih (the package's own mechanisms). The big backward-Euler step alternates between -82 and -64 mV; the cell
rests at -74.0 mV (CVode, 8 s without input)."""
import json
from pathlib import Path

import numpy as np
import pytest

from noble_neuron.detailed.spec import load_model_file
from noble_neuron.errors import SimulationError

ROOT = Path(__file__).resolve().parents[2]
REST_MV = -74.0095  # CVode (default tolerances) from -70 mV, 8 s without input, soma


def _model_file(tmp_path, *args):
    entry = {"template": str(ROOT / "tests" / "data" / "slow_rest.hoc"), "template_name": "SlowRest",
             "template_args": list(args or (0.001, -90.0)), "mechanisms": str(ROOT / "mod"),
             "models": [{"model_id": "slow_rest", "split": "train", "parameters": {}}]}
    path = tmp_path / "models.json"
    path.write_text(json.dumps(entry))
    return path


@pytest.fixture()
def slow_cell(tmp_path):
    from noble_neuron.detailed.instantiate import instantiate_cell

    spec = load_model_file(_model_file(tmp_path))[0][0]
    cell = instantiate_cell(spec)
    yield spec, cell
    del cell


def test_big_step_alone_oscillates_and_the_settled_rest_is_the_true_one(slow_cell):
    from neuron import h

    from noble_neuron.simulation.rest_state import BIG_STEPS, steady_state_initialize

    spec, cell = slow_cell
    h.celsius, h.dt = 34.0, 0.025
    h.finitialize(-70.0)
    h.t, h.dt = -1e12, 1e9
    iterates = []
    for _ in range(BIG_STEPS):
        h.fadvance()
        iterates.append(cell.soma[0](0.5).v)
    assert abs(iterates[-1] - iterates[-2]) > 10.0  # the premise: a two-cycle, neither value the rest
    h.dt = 0.025
    v = h.Vector().record(cell.soma[0](0.5)._ref_v)
    how = steady_state_initialize(h, -70.0)
    assert how.method == "settled" and how.converged
    assert cell.soma[0](0.5).v == pytest.approx(REST_MV, abs=0.005)
    assert h.t == 0.0 and h.dt == 0.025
    h.continuerun(300.0)
    assert np.ptp(v.as_numpy()) < 0.01  # at rest from t = 0: nothing left to relax


def test_calibration_finds_the_rest_and_simulations_start_there(slow_cell):
    from neuron import h

    from noble_neuron.simulation.calibration import resting_potential
    from noble_neuron.simulation.simulate import simulate
    from noble_neuron.stimuli.protocols import LongSquare

    spec, cell = slow_cell
    h.celsius = 34.0
    rest = resting_potential(spec, cell)
    assert rest == pytest.approx(REST_MV, abs=0.005)
    res = simulate(spec, LongSquare(step_nA=0.05, delay_ms=20.0, dur_ms=50.0, total_ms=80.0), 0.025, 1, cell=cell,
                   v_init_mV=rest, steady_state=True)
    before = res.v_mV[: int(19.0 / res.dt_ms)]
    assert np.abs(before - rest).max() < 0.005
    assert res.v_mV[int(69.0 / res.dt_ms)] > rest + 1.0  # the step still acts


def test_a_cell_without_rest_is_refused_saying_it_fires(tmp_path):
    from neuron import h

    from noble_neuron.detailed.instantiate import instantiate_cell
    from noble_neuron.simulation.calibration import resting_potential

    spec = load_model_file(_model_file(tmp_path, 0.001, -90.0, 0.3))[0][0]  # 0.3 nA always on: a pacemaker
    cell = instantiate_cell(spec)
    h.celsius = 34.0
    with pytest.raises(SimulationError, match="fires without input.*--v-init"):
        resting_potential(spec, cell)
    del cell


@pytest.mark.slow
def test_generate_on_build_surrogate_defaults_starts_every_trace_at_the_settled_rest(tmp_path):
    """`generate` as build-surrogate runs it (rest found by a pre-run, rheobase-relative steps), two variants."""
    from noble_neuron.cli import main
    from noble_neuron.data.dataset import open_dataset

    entry = json.loads(_model_file(tmp_path).read_text())
    entry["models"].append({"model_id": "more_ih", "split": "train", "parameters": {"apical.gbar_nn_Ih": 0.002}})
    (tmp_path / "models.json").write_text(json.dumps(entry))
    out = tmp_path / "data.h5"
    assert main(["generate", "--models", str(tmp_path / "models.json"), "--out", str(out), "--protocol", "adaptive",
                 "--v-init", "auto", "--workers", "1", "--no-progress", "--no-features"]) == 0
    ds = open_dataset(out)
    rest = ds.model_v_init_mV
    assert rest[0] == pytest.approx(-74.01, abs=0.02) and -74.0 < rest[1] < -68.0  # more Ih: more depolarised
    assert np.isfinite(ds.model_rheobase_nA).all()
    v = ds.read(range(len(ds)))
    assert np.abs(v[:, : int(5.0 / ds.dt_ms)] - rest[ds.model_index][:, None]).max() < 0.01
