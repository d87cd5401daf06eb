"""Bring your own model: a published-style template (constructor argument, preloads, own .mod
folder, distance-dependent density) from model file to dataset, with real NEURON."""
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from noble_neuron.detailed.spec import CellSpec, assign_splits, load_model_file
from noble_neuron.simulation.datagen import generate, run_signature
from noble_neuron.data.dataset import open_dataset
from noble_neuron.stimuli.protocols import LongSquare
from noble_neuron.stimuli.presets import RheobaseRelativeSteps

ROOT = Path(__file__).resolve().parent.parent
OWN = ROOT / "examples" / "own_model"


def steps(*amps, total=80.0):
    return [LongSquare(step_nA=a, delay_ms=10.0, dur_ms=60.0, total_ms=total) for a in amps]


@pytest.fixture(scope="module")
def own_specs():
    specs, splits = load_model_file(OWN / "models.json")
    return specs, splits


def test_model_file_gives_template_arguments_preloads_and_splits(own_specs):
    specs, splits = own_specs
    assert [s.model_id for s in specs] == ["morph_a", "morph_b", "morph_c", "morph_d"]
    assert splits == ["train", "train", "train", "unseen"]
    assert specs[0].template_args == (str(OWN / "morph.swc"),)  # resolved against the JSON's folder
    assert specs[0].preload == ("import3d.hoc", str(OWN / "biophysics.hoc"))  # a NEURON library file stays a name
    assert specs[0].mechanisms_dir == str(OWN / "mod")
    assert CellSpec.from_dict(specs[2].to_dict()) == specs[2]


@pytest.mark.parametrize("entry, message", [
    ({"model_id": "x", "parameters": {}, "spilt": "train"}, "unknown key"),
    ({"model_id": "x", "parameters": {}, "split": "test"}, "split 'test'"),
    ({"model_id": "x"}, "needs a 'parameters' mapping"),
])
def test_model_file_errors_name_the_problem(tmp_path, entry, message):
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"template": str(OWN / "cell.hoc"), "template_name": "MorphCell", "models": [entry]}))
    with pytest.raises(ValueError, match=message):
        load_model_file(f)


def test_template_with_argument_and_preloads_runs_in_pool_and_serial_engines(tmp_path, own_specs):
    specs = own_specs[0][:2]
    protocols = steps(0.0, 0.2)
    serial = generate(specs, protocols, tmp_path / "serial.h5", engine="serial", progress=False)
    pool = generate(specs, protocols, tmp_path / "pool.h5", engine="pool", n_workers=2, progress=False)
    a, b = open_dataset(serial), open_dataset(pool)
    va, vb = a.read(range(4)), b.read(range(4))
    np.testing.assert_array_equal(va, vb)
    assert va[1].max() > 0 and va[3].max() > 0  # 0.2 nA fires in both models
    assert a.model_splits == ["train", "train"]  # no split given: train


def test_loader_file_that_loads_the_template(tmp_path):
    """A loader .hoc that load_files import3d, the biophysics and the template (run apart: a template
    name can be defined only once per process)."""
    loader = tmp_path / "loader.hoc"
    loader.write_text(f'load_file("import3d.hoc")\nload_file("{OWN / "biophysics.hoc"}")\n'
                      f'load_file("{OWN / "cell.hoc"}")\n')
    code = "\n".join([
        "from noble_neuron.detailed.spec import CellSpec",
        "from noble_neuron.detailed.instantiate import instantiate_cell",
        f"spec = CellSpec('m', {str(loader)!r}, 'MorphCell', {str(OWN / 'mod')!r}, {{}}, ({str(OWN / 'morph.swc')!r},))",
        "cell = instantiate_cell(spec)",
        "print('SECTIONS', len(list(cell.all)))",
        f"bad = CellSpec('m2', {str(loader)!r}, 'NoSuchCell', None, {{}})",
        "try:",
        "    instantiate_cell(bad)",
        "except Exception as exc:",
        "    print('ERROR', exc)",
    ])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert "SECTIONS 4" in out, proc.stderr[-2000:]
    assert "'NoSuchCell' is not defined in" in out and "--preload" in out


def test_missing_constructor_argument_names_the_fix(own_specs):
    from noble_neuron.detailed.instantiate import instantiate_cell
    from noble_neuron.errors import SimulationError

    spec = CellSpec("noargs", own_specs[0][0].template_path, "MorphCell", str(OWN / "mod"), {},
                    preload=own_specs[0][0].preload)
    with pytest.raises(SimulationError, match=r"takes 1 constructor argument.*--template-args"):
        instantiate_cell(spec)


def test_distance_expression_sets_each_segment_and_flat_values_warn(own_specs):
    from neuron import h

    from noble_neuron.detailed.instantiate import instantiate_cell, soma_section

    from noble_neuron.errors import FlattenedGradientWarning
    cell = instantiate_cell(own_specs[0][2])  # apical.gbar_demo_ih = "4e-5 * exp(distance / 150)"
    origin = soma_section(cell)(0.5)
    segs = [seg for sec in cell.apical for seg in sec]
    near, far = segs[0], segs[-1]
    for seg in (near, far):
        assert seg.gbar_demo_ih == pytest.approx(4e-5 * np.exp(h.distance(origin, seg) / 150), rel=1e-9)
    assert far.gbar_demo_ih > 5 * near.gbar_demo_ih
    del cell
    flat = CellSpec("flat", **{k: v for k, v in own_specs[0][0].to_dict().items() if k not in ("model_id", "parameters")},
                    parameters={"apical.gbar_demo_ih": 3e-5})
    with pytest.warns(FlattenedGradientWarning, match=r"vary along 'apical'.*expression of distance"):
        cell = instantiate_cell(flat)
    assert {seg.gbar_demo_ih for sec in cell.apical for seg in sec} == {3e-5}


def test_auto_rest_differs_from_neuron_default_is_stored_and_starts_every_trace(tmp_path, own_specs):
    specs = own_specs[0][:2]
    out = generate(specs, steps(0.0, 0.02), tmp_path / "rest.h5", engine="serial", progress=False, v_init="auto")
    ds = open_dataset(out)
    assert ds.attrs["v_init"] == "auto"
    rest = ds.model_v_init_mV
    assert np.all(np.abs(rest - (-65.0)) > 5.0)  # NEURON's default v_init is -65 mV; this cell rests near -73
    v = ds.read(range(4))
    for row in range(4):
        before_step = v[row, : int(9.0 / ds.dt_ms)]
        assert np.abs(before_step - rest[ds.model_index[row]]).max() < 0.01  # at rest from t = 0, no transient
    template = open_dataset(generate(specs, steps(0.0), tmp_path / "template.h5", engine="serial", progress=False))
    assert np.isnan(template.model_v_init_mV).all()
    assert abs(template.read([0])[0, 0] - (-65.0)) < 0.1 and abs(template.read([0])[0, -1] - rest[0]) < 1.0


def _bisection(spec, cell, rest, lo=0.0, hi=0.5, tol=0.0005):
    from noble_neuron.features.ephys import count_spikes
    from noble_neuron.simulation.simulate import simulate

    def fires(a):
        p = LongSquare(step_nA=a, delay_ms=15.0, dur_ms=100.0, total_ms=120.0)
        return count_spikes(simulate(spec, p, 0.02, 1, cell=cell, v_init_mV=rest, steady_state=True).v_mV, 0.02) > 0

    while hi - lo > tol:
        lo, hi = (lo, (lo + hi) / 2) if fires((lo + hi) / 2) else ((lo + hi) / 2, hi)
    return hi


def test_rheobase_search_matches_a_fine_bisection_and_scales_the_plan(tmp_path, own_specs):
    from noble_neuron.simulation.calibration import resting_potential, rheobase
    from noble_neuron.detailed.instantiate import instantiate_cell

    spec = own_specs[0][1]
    cell = instantiate_cell(spec)
    rest = resting_potential(spec, cell)
    found = rheobase(spec, cell, rest, steady_state=True, delay_ms=15.0, dur_ms=100.0)
    assert abs(found - _bisection(spec, cell, rest)) <= 0.010
    del cell
    plan = RheobaseRelativeSteps(n_hyper=2, n_depol=4, delay_ms=15.0, dur_ms=100.0, total_ms=120.0)
    ds = open_dataset(generate([spec], plan, tmp_path / "adaptive.h5", engine="serial", progress=False, v_init="auto"))
    assert ds.model_rheobase_nA[0] == pytest.approx(found, abs=1e-9)
    assert ds.amp_nA.min() >= -0.5 * found and ds.amp_nA.max() < 3.0 * found and ds.amp_nA.size == 6
    assert (ds.amp_nA < 0).sum() == 2


def test_split_change_on_an_existing_dataset_is_applied(tmp_path, own_specs):
    specs = own_specs[0][:3]
    out = tmp_path / "split.h5"
    generate(specs, steps(0.1), out, engine="serial", progress=False, splits=["train", "train", "unseen"])
    before = open_dataset(out).read(range(3))
    generate(specs, steps(0.1), out, engine="serial", progress=False,
             splits=assign_splits([s.model_id for s in specs], [None] * 3, unseen=["morph_a"]))
    ds = open_dataset(out)
    assert ds.model_splits == ["unseen", "train", "train"]
    np.testing.assert_array_equal(ds.read(range(3)), before)  # rows untouched
    generate(specs, steps(0.1), out, engine="serial", progress=False, splits=[None] * 3)  # nothing given: kept
    assert open_dataset(out).model_splits == ["unseen", "train", "train"]
    fraction = assign_splits(["a", "b", "c", "d", "e"], [None] * 5, unseen_fraction=0.4, seed=3)
    assert fraction.count("unseen") == 2 and fraction == assign_splits("abcde", [None] * 5, unseen_fraction=0.4, seed=3)
    with pytest.raises(ValueError, match="no such model"):
        assign_splits(["a"], [None], unseen=["b"])


def test_editing_a_loaded_file_changes_the_signature_moving_it_does_not(tmp_path):
    def signature(folder):
        specs, _ = load_model_file(folder / "models.json")
        return run_signature(specs, steps(0.1), 0.02, 3)

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(OWN, a)
    shutil.copytree(OWN, b)
    base = signature(a)
    assert signature(b) == base  # the same files elsewhere: the same model
    for name, edit in [("mod/demo_ih.mod", "\n: edited\n"), ("morph.swc", "13 3 -150 10 0 0.5 4\n"),
                       ("biophysics.hoc", "\n// edited\n"), ("cell.hoc", "\n// edited\n")]:
        original = (b / name).read_text()
        (b / name).write_text(original + edit)
        assert signature(b) != base, f"editing {name} must change the signature"
        (b / name).write_text(original)
    assert signature(b) == base


def test_build_surrogate_runs_end_to_end_and_resumes(tmp_path):
    """The one-command pipeline on the tiny own model: dataset, checkpoint, report, a usable SurrogateCell."""
    from neuron import h

    from noble_neuron import SurrogateCell
    from noble_neuron.cli import main

    (tmp_path / "plan.yaml").write_text(
        "rheobase_relative_steps: {n_hyper: 2, n_depol: 8, delay_ms: 10, dur_ms: 100, total_ms: 120}\n")
    (tmp_path / "tiny.yaml").write_text("model: {n_layers: 2, hidden_channels: 12, n_modes: 128}\n"
                                        "train: {epochs: 8, batch_size: 8, lr: 0.01, val_every_kth_amplitude: 0}\n")
    out = tmp_path / "run"
    args = ["build-surrogate", "--models", str(OWN / "models.json"), "--out-dir", str(out), "--protocol",
            str(tmp_path / "plan.yaml"), "--config", str(tmp_path / "tiny.yaml"), "--workers", "1", "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "pipeline.json").read_text())
    assert summary["splits"] == {"train": 3, "unseen": 1}
    assert set(summary["stages_done"]) == {"generate", "features", "train", "evaluate"}
    report = json.loads((out / "report" / "accuracy.json").read_text())
    assert report["rel_l2_in_distribution"] is not None and (out / "report" / "accuracy_traces.png").is_file()
    ds = open_dataset(out / "data.h5")
    assert np.isfinite(ds.model_rheobase_nA).all() and np.isfinite(ds.model_v_init_mV).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cell = SurrogateCell("morph_a", checkpoint=out / "surrogate.pt")
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = 10, 100, 0.1
    v = h.Vector().record(cell.soma(0.5)._ref_v)
    h.finitialize(-70)
    h.continuerun(120)
    assert np.isfinite(v.as_numpy()).all() and v.size() > 100
    del stim, cell
    from noble_neuron.errors import DomainWarning
    from noble_neuron.surrogate.checkpoint import load_surrogate

    s = load_surrogate(out / "surrogate.pt", device="cpu")
    ranges = {m: f["amp_range_nA"] for m, f in s.model_features.items() if f["split"] == "train"}
    low_top = min(ranges, key=lambda m: ranges[m][1])  # the model whose plan ends lowest
    amp = s.amp_range_nA[1]  # the top of the global range: another model's plan reaches it, this one's does not
    lo, hi = ranges[low_top]
    assert amp > hi + 0.05 * (hi - lo)  # beyond the guard's margin
    cell = SurrogateCell(low_top, checkpoint=out / "surrogate.pt")
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = 10, 100, amp
    with pytest.warns(DomainWarning, match=f"outside the amplitudes model {low_top} was trained on"):
        h.finitialize(-70)
    del stim, cell
    trained_at = (out / "surrogate.pt").stat().st_mtime
    assert main(args) == 0  # a rerun: every stage is done, nothing is trained again
    assert (out / "surrogate.pt").stat().st_mtime == trained_at
