"""The shipped PV family: split, parameters, plain-HoC loading and real spiking behaviour."""
import json
import subprocess
import sys
import textwrap

import pytest

from noble_neuron.features.ephys import count_spikes
from noble_neuron.detailed.pv_family import (
    TEMPLATE_NAME, TEMPLATE_PATH, default_parameters, get_model, load_family, parameter_bounds,
)
from noble_neuron.stimuli.protocols import LongSquare
from noble_neuron.simulation.simulate import simulate

def test_family_has_60_models_with_fixed_split():
    family = load_family()
    assert len(family) >= 60
    assert len({m.model_id for m in family}) == len(family)
    assert sum(m.split == "train" for m in family) == 50
    assert sum(m.split == "unseen" for m in family) == 10
    assert [m.model_id for m in load_family("unseen")] == [m.model_id for m in family if m.split == "unseen"]
    with pytest.raises(ValueError, match="split must be one of"):
        load_family("test")


def test_family_parameters_cover_the_template_and_respect_bounds():
    keys = set(default_parameters())
    bounds = parameter_bounds()
    spread = {k: set() for k in bounds}
    for m in load_family():
        assert set(m.parameters) == keys
        for k, (lo, hi) in bounds.items():
            assert lo - 1e-12 <= m.parameters[k] <= hi + 1e-12, (m.model_id, k)
            spread[k].add(round(m.parameters[k], 9))
    assert all(len(v) > 30 for v in spread.values()), "HoF models must differ in every free parameter"


def test_template_loads_with_plain_hoc():
    code = textwrap.dedent(f"""
        from neuron import h
        from noble_neuron.detailed.mechanisms import load_mechanisms
        load_mechanisms()
        h.load_file({str(TEMPLATE_PATH)!r})
        cell = h.{TEMPLATE_NAME}()
        print(cell.soma[0].L, sum(s.nseg for s in cell.all), len(list(cell.axonal)), len(list(cell.basal)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    soma_L, nseg, n_axon, n_dend = float(out[0]), int(out[1]), int(out[2]), int(out[3])
    assert 10 < soma_L < 30
    assert 100 <= nseg <= 300
    assert n_axon >= 2 and n_dend >= 10


def test_instantiated_model_has_a_soma_section():
    cell = get_model("hof_000").instantiate()
    from neuron import nrn

    assert isinstance(cell.soma, nrn.Section)
    assert cell.soma(0.5).gbar_nn_NaT == pytest.approx(load_family()[0].parameters["somatic.gbar_nn_NaT"])


@pytest.mark.parametrize("model_id", ["hof_000", "hof_059"])
def test_family_model_fires_above_rheobase_not_below(model_id):
    spec = get_model(model_id).cell_spec()
    step = dict(delay_ms=15.0, dur_ms=100.0, total_ms=130.0)
    silent = simulate(spec, LongSquare(step_nA=0.02, **step))
    firing = simulate(spec, LongSquare(step_nA=0.4, **step))
    hyper = simulate(spec, LongSquare(step_nA=-0.11, **step))
    assert count_spikes(silent.v_mV, silent.dt_ms) == 0
    assert count_spikes(hyper.v_mV, hyper.dt_ms) == 0
    assert count_spikes(firing.v_mV, firing.dt_ms) >= 10  # fast spiking: ≥ 100 Hz at 0.4 nA
    assert -85 < hyper.v_mV[:200].mean() < -60
    assert hyper.v_mV[-300:].min() > -100


def test_get_model_unknown_id():
    with pytest.raises(KeyError, match="no model"):
        get_model("hof_999")


def test_the_shipped_template_is_what_its_generator_writes():
    from noble_neuron.detailed.pv_family import TEMPLATE_PATH
    from noble_neuron.detailed.pv_family.morphology import template_text

    assert template_text() == TEMPLATE_PATH.read_text()
