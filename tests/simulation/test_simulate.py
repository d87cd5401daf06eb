"""Real NEURON simulations of a tiny HH cell: spikes, downsampling and bad inputs."""
import dataclasses
import math

import numpy as np
import pytest

from conftest import DATA, short_step
from noble_neuron.features.ephys import count_spikes
from noble_neuron.detailed.instantiate import instantiate_cell
from noble_neuron.detailed.spec import CellSpec
from noble_neuron.errors import SimulationError
from noble_neuron.simulation.simulate import simulate

def test_spikes_above_rheobase_not_below(ball_stick_spec):
    below = simulate(ball_stick_spec, short_step(0.0))
    above = simulate(ball_stick_spec, short_step(0.3))
    assert count_spikes(below.v_mV, below.dt_ms) == 0
    assert count_spikes(above.v_mV, above.dt_ms) >= 3
    assert above.dt_ms == pytest.approx(0.06)
    assert above.v_mV.shape == (1000,) and above.v_mV.dtype == np.float32
    assert np.all(above.i_nA[: int(10 / 0.06)] == 0) and above.i_nA[int(20 / 0.06)] == pytest.approx(0.3)


def test_downsampled_trace_follows_full_resolution(ball_stick_spec):
    coarse = simulate(ball_stick_spec, short_step(0.05), downsample=3)
    fine = simulate(ball_stick_spec, short_step(0.05), downsample=1)
    # subthreshold: the low-pass filter must not distort the slow response
    assert np.max(np.abs(fine.v_mV[::3][: coarse.v_mV.size] - coarse.v_mV)) < 0.5


def test_cvode_agrees_with_fixed_step(ball_stick_spec):
    fixed = simulate(ball_stick_spec, short_step(0.02))
    var = simulate(ball_stick_spec, short_step(0.02), cvode=True)
    assert np.max(np.abs(fixed.v_mV - var.v_mV)) < 0.5


def _spec(**changes):
    base = CellSpec("m", str(DATA / "ball_stick.hoc"), "BallStick", None, {"somatic.gnabar_hh": 0.12})
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("changes, error, message", [
    ({"template_path": str(DATA / "nope.hoc")}, SimulationError, "does not exist"),
    ({"template_path": str(DATA)}, SimulationError, "not a file"),
    ({"template_name": "NotThere"}, SimulationError, "'NotThere' is not defined"),
    ({"parameters": {"somatic.gbar_nothing": 1.0}}, SimulationError, "no range variable 'gbar_nothing'"),
    ({"parameters": {"apical.cm": 1.0}}, SimulationError, "no SectionList named 'apical'"),
    ({"parameters": {"global.not_a_global_xyz": 1.0}}, SimulationError, "no global named"),
])
def test_bad_cells_raise_clear_errors(changes, error, message):
    with pytest.raises(error, match=message):
        simulate(_spec(**changes), short_step(0.1))


@pytest.mark.parametrize("parameters, message", [
    ({"somatic.gnabar_hh": math.nan}, "must be finite"),
    ({"somatic.gnabar_hh": -0.1}, "negative"),
    ({"all.cm": 0.0}, "must be > 0"),
    ({"gnabar_hh": 0.1}, "must look like"),
    ({"somatic.gnabar_hh": [0.1]}, "must be a number"),
    ({"somatic.gnabar_hh": "0.1 *"}, "not valid"),
    ({"somatic.gnabar_hh": "0.1 * dist"}, "unknown name 'dist'"),
    ({"somatic.gnabar_hh": "__import__('os')"}, "calls something other"),
    ({"global.celsius": "30 + distance"}, "applies only to range variables"),
])
def test_bad_parameter_values_rejected_at_construction(parameters, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _spec(parameters=parameters)


def test_missing_mechanism_named():
    spec = CellSpec("m", str(DATA / "needs_missing_mech.hoc"), "NeedsMissing", None, {})
    with pytest.raises(SimulationError, match=r"nn_not_compiled.*not loaded"):
        instantiate_cell(spec)


@pytest.mark.parametrize("kwargs, message", [
    ({"sim_dt_ms": -0.02}, "dt_ms must be a positive"),
    ({"sim_dt_ms": 0.0}, "dt_ms must be a positive"),
    ({"sim_dt_ms": 100.0}, "larger than the protocol"),
    ({"downsample": 0}, "downsample must be a positive integer"),
])
def test_bad_simulation_settings(ball_stick_spec, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate(ball_stick_spec, short_step(0.1), **kwargs)


def test_globals_of_one_model_do_not_leak_into_the_next(ball_stick_spec):
    """A model setting v_init/celsius must not change how a later model without them runs."""
    reference = simulate(ball_stick_spec, short_step(0.0))
    hot = dataclasses.replace(ball_stick_spec, model_id="hot",
                              parameters={**ball_stick_spec.parameters, "global.celsius": 30.0,
                                          "global.v_init": -90.0})
    simulate(hot, short_step(0.0))
    again = simulate(ball_stick_spec, short_step(0.0))
    np.testing.assert_array_equal(reference.v_mV, again.v_mV)
    assert count_spikes(again.v_mV, again.dt_ms) == 0
