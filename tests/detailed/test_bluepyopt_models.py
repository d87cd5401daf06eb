"""BluePyOpt cell models become CellSpecs whose traces equal BluePyOpt's own simulation."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"
VALUES = {"gnabar_hh": 0.12, "gbar_demo_ih": 3e-5}

# Run apart: BluePyOpt templates delete every other section of their process.
_COMPARE = """
import json, sys
import numpy as np
import bluepyopt.ephys as ephys
sys.path.insert(0, {data!r})
from bpo_cell import OWN, cell_model
from neuron import h
from noble_neuron.detailed.bluepyopt_models import specs_from_bluepyopt
from noble_neuron.detailed.mechanisms import load_mechanisms
from noble_neuron.stimuli.protocols import LongSquare
from noble_neuron.detailed.instantiate import instantiate_cell, soma_section
from noble_neuron.simulation.simulate import simulate

load_mechanisms(str(OWN / "mod"))
model, values = cell_model(), {values!r}
where = ephys.locations.NrnSeclistCompLocation("soma", seclist_name="somatic", sec_index=0, comp_x=0.5)
stim = ephys.stimuli.NrnSquarePulse(step_amplitude=1.0, step_delay=10, step_duration=60, location=where,
                                    total_duration=80)
proto = ephys.protocols.SweepProtocol("step", [stim], [ephys.recordings.CompRecording(name="v", location=where)])
resp = proto.run(model, values, sim=ephys.simulators.NrnSimulator(dt=0.025, cvode_active=False))["v"]
spec = specs_from_bluepyopt(model, {{"m0": values}}, {out!r}, mechanisms_dir=OWN / "mod")[0]
h.v_init = -65
ours = simulate(spec, LongSquare(step_nA=1.0, delay_ms=10, dur_ms=60, total_ms=80), 0.025, 1).v_mV
t = np.arange(ours.size) * 0.025
theirs = np.interp(t, resp["time"].to_numpy(), resp["voltage"].to_numpy())
cell = instantiate_cell(spec)
origin = soma_section(cell)(0.5)
segs = [seg for sec in cell.apical for seg in sec]
print("RESULT", json.dumps({{"max_diff_mV": float(np.abs(ours - theirs).max()),
    "spikes": int(((ours[1:] > 0) & (ours[:-1] <= 0)).sum()), "celsius": float(h.celsius),
    "density": [[seg.gbar_demo_ih, h.distance(origin, seg)] for seg in (segs[0], segs[-1])],
    "spec": spec.to_dict()}}))
"""


def test_exported_model_simulates_exactly_as_bluepyopt_and_keeps_distance_scalers(tmp_path):
    code = _COMPARE.format(data=str(DATA), values=VALUES, out=str(tmp_path / "templates"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, proc.stderr[-3000:]
    r = json.loads(line[0][len("RESULT "):])
    assert r["spikes"] >= 1 and r["max_diff_mV"] < 1e-3  # same trace as BluePyOpt's own run
    assert r["celsius"] == 6.3 and r["spec"]["parameters"] == {"global.celsius": 6.3}
    for value, distance in r["density"]:
        assert value == pytest.approx(3e-5 * __import__("math").exp(distance / 150.0), rel=1e-9)
    assert r["density"][1][0] > 5 * r["density"][0][0]
    assert r["spec"]["template_name"] == "BpoCell_m0" and r["spec"]["template_args"][1] == "morph.swc"


def test_parameter_sets_are_checked_and_the_morphology_is_in_the_provenance(tmp_path):
    sys.path.insert(0, str(DATA))
    try:
        from bpo_cell import cell_model
    finally:
        sys.path.remove(str(DATA))
    from noble_neuron.detailed.bluepyopt_models import specs_from_bluepyopt
    from noble_neuron.detailed.spec import loaded_files

    with pytest.raises(ValueError, match=r"misses free parameters \['gbar_demo_ih'\]"):
        specs_from_bluepyopt(cell_model(), {"m0": {"gnabar_hh": 0.1}}, tmp_path)
    with pytest.raises(ValueError, match="unknown parameters"):
        specs_from_bluepyopt(cell_model(), {"m0": {**VALUES, "gkbar": 1.0}}, tmp_path)
    with pytest.raises(TypeError, match="CellModel"):
        specs_from_bluepyopt(object(), {"m0": VALUES}, tmp_path)
    a, b = specs_from_bluepyopt(cell_model(), {"a": VALUES, "b": {**VALUES, "gnabar_hh": 0.15}}, tmp_path)
    assert a.template_name != b.template_name  # one template name per parameter set
    assert "morph.swc" in {f.name for f in loaded_files(a)}
