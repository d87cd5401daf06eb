"""Reference neurons: a population's step trains in a checkpoint, borrowed by neurons given by features."""
import numpy as np
import pytest

from conftest import DATA, TINY_AMPS_NA, short_step


def test_a_neuron_with_a_references_features_fires_its_trains(tiny_phase, population, tmp_path):
    from noble_neuron.data.dataset import open_dataset
    from noble_neuron.features.spikes import spike_times
    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.surrogate.references import ReferenceNeuron
    from noble_neuron.training.references import add_references

    out = add_references(tiny_phase, [population], tmp_path / "with_refs.pt", feature_protocol=None)
    s, before = load_surrogate(out, device="cpu"), load_surrogate(tiny_phase, device="cpu")
    assert sorted(s.references) == ["ref0", "ref1"] and before.references == {}
    ds = open_dataset(population)
    names = list(s.config.feature_names)
    table = ds.features()
    feats = table["values"][0, [table["names"].index(n) for n in names]]
    np.testing.assert_allclose(s.references["ref0"].features, feats)
    # the domain is the training population's hull now: the references lie inside it, not inside the models' alone
    refs = np.stack([r.features for r in s.references.values()])
    assert s.in_hull(refs).all() and not before.in_hull(refs).all()
    again = ReferenceNeuron.from_json(s.references["ref0"].to_json())
    np.testing.assert_allclose(again.trains.times_ms, s.references["ref0"].trains.times_ms, atol=1e-4)

    rows = ds.rows(model_id="ref0")
    stim, volt = ds.read(rows, "stimulus_nA"), ds.read(rows, "voltage_mV")
    firing = [i for i, v in enumerate(volt) if spike_times(v, ds.dt_ms).size >= 2]
    assert firing
    x = stim[firing]
    given = np.tile(feats, (len(firing), 1))
    got = s.predict(x, given, ds.dt_ms, check_domain=False)
    without = before.predict(x, given, ds.dt_ms, check_domain=False)
    differs = 0
    for i, vg, vw in zip(firing, got, without):
        true = spike_times(volt[i], ds.dt_ms)
        pred = spike_times(vg, ds.dt_ms)
        assert pred.size == true.size and np.abs(pred - true).max() < 0.2  # its own trains, at its own steps
        other = spike_times(vw, ds.dt_ms)
        differs += other.size != true.size or np.abs(other - true).max() > 0.2
    assert differs  # the training models' trains alone do not give them


def test_references_that_would_leak_or_lack_features_are_refused(tiny_phase, tiny_dataset, population,
                                                                tmp_path, tiny_trained):
    from noble_neuron.detailed.spec import CellSpec
    from noble_neuron.simulation.datagen import generate
    from noble_neuron.training.references import add_references

    with pytest.raises(ValueError, match=r"already knows.*\['bs3'\] among its held-out models.*leak"):
        add_references(tiny_phase, [tiny_dataset], tmp_path / "x.pt")
    bare = generate([CellSpec("ref9", str(DATA / "ball_stick.hoc"), "BallStick", None,
                              {"somatic.gnabar_hh": 0.12, "global.celsius": 6.3})],
                    [short_step(a, 60.0) for a in TINY_AMPS_NA[:3]], tmp_path / "bare.h5", engine="serial",
                    progress=False)
    with pytest.raises(ValueError, match="no feature table.*noble-neuron features --data"):
        add_references(tiny_phase, [bare], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a whole-trace event model"):
        add_references(tiny_trained[0], [population], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a per-model preset"):
        add_references(tiny_phase, [population], tmp_path / "x.pt", feature_protocol="nonsense")
    assert not (tmp_path / "x.pt").exists()


def test_features_on_the_datasets_own_amplitudes_are_the_measured_ones(population):
    """Read off the neuron's trains at its own step amplitudes, the FI features are those `model_features` measures;
    on a finer protocol I_thr lies within the coarse grid's last silent and first firing amplitudes."""
    from noble_neuron.data.dataset import open_dataset
    from noble_neuron.features.ephys import model_features
    from noble_neuron.features.spikes import spike_times
    from noble_neuron.surrogate.step_trains import fit_step_trains
    from noble_neuron.recordings.measure import features_on_protocol

    ds = open_dataset(population)
    rows = ds.rows(model_id="ref0")
    amps, volt, stim = ds.amp_nA[rows], ds.read(rows, "voltage_mV"), ds.read(rows, "stimulus_nA")
    trains = fit_step_trains(stim, [spike_times(v, ds.dt_ms) for v in volt], ds.dt_ms)
    names = ["I_thr_nA", "s_thr_Hz_per_nA", "rate_at_2x_I_thr_Hz", "efel.voltage_base", "efel.AP1_width"]
    own = model_features(amps, volt, ds.dt_ms, stim_start_ms=10.0, stim_dur_ms=40.0)
    got = features_on_protocol(names, amps, volt, trains, ds.dt_ms, amps, 10.0, 40.0)
    np.testing.assert_allclose(got[:4], [own[n] for n in names[:4]], rtol=1e-9)
    assert 0.05 < got[4] < 5.0  # a median over the firing traces, in ms
    fine = features_on_protocol(names, amps, volt, trains, ds.dt_ms, np.arange(0.0, 0.3, 0.002), 10.0, 40.0)
    above = amps[amps >= own["I_thr_nA"]].min()
    below = amps[amps < own["I_thr_nA"]].max()
    assert below < fine[0] <= above


def test_sampled_neurons_are_population_neurons_with_their_own_trains(tiny_phase, population, tmp_path):
    import warnings

    from noble_neuron import SurrogateCell
    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.training.references import add_references

    s = load_surrogate(add_references(tiny_phase, [population], tmp_path / "refs.pt", feature_protocol=None),
                       device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny checkpoint's accuracy caveats
        cells = SurrogateCell.sample(2, seed=3, checkpoint=s)
        assert sorted(tuple(c.features) for c in cells) == sorted(tuple(r.features) for r in s.references.values())
        assert all(any(c.measured is r.trains for r in s.references.values()) for c in cells)  # their own trains
        assert [tuple(c.features) for c in SurrogateCell.sample(2, seed=3, checkpoint=s)] == \
            [tuple(c.features) for c in cells]
        hull = SurrogateCell.sample(5, checkpoint=s, source="hull")
        assert all(c.measured is None for c in hull) and s.in_hull(np.stack([c.features for c in hull])).all()
        with pytest.raises(ValueError, match="carries 2 population neurons"):
            SurrogateCell.sample(3, checkpoint=s)
        with pytest.raises(ValueError, match="'population'"):
            SurrogateCell.sample(1, checkpoint=s, source="latent")
