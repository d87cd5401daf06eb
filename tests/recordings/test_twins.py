"""Twins of a recorded neuron among a checkpoint's neurons with trains (recordings.twins, noble-neuron twins)."""
import json
import warnings

import numpy as np
import pytest


@pytest.fixture(scope="module")
def with_references(tiny_phase, population, tmp_path_factory):
    from noble_neuron.training.references import add_references

    return add_references(tiny_phase, [population], tmp_path_factory.mktemp("twins") / "refs.pt",
                          feature_protocol=None)


def test_a_recording_made_by_a_population_neuron_finds_it_first(with_references, population, tmp_path, capsys):
    """ref0's own sweeps, through an NWB file and `noble-neuron twins`: ref0 is the best twin, at distance ~0,
    with its features; the twins' cells fire its trains; the spread says how much each feature is pinned."""
    from noble_neuron import SurrogateCell
    from noble_neuron.cli import main
    from noble_neuron.recordings.readers import sweeps_from_dataset, write_nwb
    from noble_neuron.recordings.twins import load_twins
    from noble_neuron.surrogate.checkpoint import load_surrogate

    write_nwb(sweeps_from_dataset(population, "ref0"), tmp_path / "ref0.nwb")
    assert main(["twins", "--checkpoint", str(with_references), "--recording", str(tmp_path / "ref0.nwb"),
                 "--n", "4", "--out", str(tmp_path / "out")]) == 0
    assert "best ref0" in capsys.readouterr().out
    twins = load_twins(tmp_path / "out" / "twins.json")
    s = load_surrogate(with_references, device="cpu")
    assert twins.ids[0] == "ref0" and twins.distances[0] < 0.1 and len(twins.ids) == 4
    assert np.allclose(twins.features[0], s.references["ref0"].features)
    assert twins.weights.sum() == pytest.approx(1.0) and twins.weights[0] == twins.weights.max()
    assert set(twins.spread) == set(s.config.feature_names)
    assert (tmp_path / "out" / "twins.png").stat().st_size > 5000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny checkpoint's caveats and domain
        cells = SurrogateCell.from_twins(tmp_path / "out" / "twins.json", checkpoint=s, n=2)
    assert cells[0].measured is s.references["ref0"].trains and len(cells) == 2
    bad = json.loads((tmp_path / "out" / "twins.json").read_text()) | {"ids": ["nobody"]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="not neurons of this checkpoint"):
        SurrogateCell.from_twins(tmp_path / "bad.json", checkpoint=s)


def test_the_shipped_populations_twins_are_detailed_models_of_the_family(tmp_path):
    """A recording with a reference neuron's own trains and features: that neuron is its best twin, and its
    detailed twin is its parameter set on the family's template, a model file `load_model_file` reads back."""
    from noble_neuron.detailed import pv_family
    from noble_neuron.detailed.spec import load_model_file
    from noble_neuron.neuron.cell import resolve_surrogate
    from noble_neuron.recordings.measure import MeasuredNeuron
    from noble_neuron.recordings.twins import detailed_twins, find_twins, write_model_file

    shipped = resolve_surrogate(None)
    ref = shipped.references["pop_0007"]
    neuron = MeasuredNeuron(dict(zip(shipped.config.feature_names, ref.features)), ref.trains)
    twins = find_twins(neuron, shipped, 3)
    assert twins.ids[0] == "pop_0007" and twins.distances[0] == pytest.approx(0.0, abs=1e-9)
    specs, _ = load_model_file(write_model_file(detailed_twins(twins, shipped), tmp_path / "twins_models.json"))
    assert [s.model_id for s in specs] == twins.ids
    assert specs[0].parameters == ref.parameters and specs[0].template_name == pv_family.TEMPLATE_NAME
    with pytest.raises(ValueError, match="all were excluded"):
        find_twins(neuron, shipped, 3, exclude=tuple(shipped.references) + tuple(shipped.backbones))
