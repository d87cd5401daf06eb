"""The training population builder: reproducible by seed, no near-duplicate of a held-out model."""
import numpy as np
import pytest

from noble_neuron.detailed.pv_family import load_family, parameter_bounds
from noble_neuron.detailed.pv_family.population import (POPULATION_FILE, build_population, draw_candidates,
                                                        near_held_out, nearest_distances, normalised_parameters)
from noble_neuron.detailed.spec import load_model_file


def _free(models):
    """(n, n_free) free-parameter vectors (sorted keys) of family models."""
    keys = sorted(parameter_bounds())
    return np.array([[m.parameters[k] for k in keys] for m in models])


def test_candidates_repeat_with_the_seed_and_stay_in_bounds():
    seeds = _free([m for m in load_family() if m.split == "train"])
    a = draw_candidates(seeds, 12, 0.25, np.random.default_rng(3))
    b = draw_candidates(seeds, 12, 0.25, np.random.default_rng(3))
    c = draw_candidates(seeds, 12, 0.25, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    bounds = parameter_bounds()
    lo = np.array([bounds[k][0] for k in sorted(bounds)])
    hi = np.array([bounds[k][1] for k in sorted(bounds)])
    assert np.all(a >= lo) and np.all(a <= hi)
    # each is a perturbation of its seed, not a copy: about spread × log range away in normalised units
    moved = np.linalg.norm(normalised_parameters([dict(zip(sorted(bounds), x)) for x in a])
                           - normalised_parameters([dict(zip(sorted(bounds), x)) for x in seeds[:12]]), axis=1)
    assert np.all(moved > 0.2) and np.all(moved < 1.0)


def test_a_held_out_model_and_its_close_copies_are_refused():
    family = load_family()
    held = [dict(m.parameters) for m in family if m.split == "unseen"]
    unseen = _free([m for m in family if m.split == "unseen"])
    train = _free([m for m in family if m.split == "train"])
    assert near_held_out(unseen, held, 0.45).all()  # each held-out model itself: distance 0
    close = draw_candidates(unseen, 10, 0.02, np.random.default_rng(0))
    assert near_held_out(close, held, 0.45).all()
    # the training models are all farther than the default exclusion from every held-out one
    assert not near_held_out(train, held, 0.45).any()
    d = nearest_distances(normalised_parameters([dict(m.parameters) for m in family if m.split == "train"]),
                          normalised_parameters(held))
    assert d.min() > 0.6


def test_build_refuses_everything_near_a_held_out_model_with_a_clear_error(tmp_path):
    # an exclusion wider than the parameter cube refuses every candidate before any simulation
    with pytest.raises(RuntimeError, match=r"0 of 3 parameter sets accepted after 12 candidates.*near_held_out': 12"):
        build_population(tmp_path, n_models=3, exclusion=100.0, max_candidates=12, n_workers=1, progress=False)
    assert not (tmp_path / POPULATION_FILE).exists()


@pytest.mark.parametrize("bad, match", [({"n_models": 0}, "n_models"), ({"spread": 0.0}, "spread"),
                                        ({"exclusion": -1.0}, "exclusion")])
def test_bad_settings_are_named(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        build_population(tmp_path, **({"n_models": 2} | bad), progress=False)


@pytest.mark.slow
def test_population_is_the_seeds_accepted_candidates_and_loads_as_a_model_file(tmp_path):
    index = build_population(tmp_path, n_models=2, seed=5, n_workers=1, progress=False)
    keys = sorted(parameter_bounds())
    seeds = _free([m for m in load_family() if m.split == "train"])
    stream = draw_candidates(seeds, index["procedure"]["candidates"], 0.25, np.random.default_rng(5))
    got = np.array([[m["parameters"][k] for k in keys] for m in index["models"]])
    # the accepted sets are candidates of the seed's own stream, in order: the same seed gives the same population
    rows = [int(np.flatnonzero(np.all(stream == g, axis=1))[0]) for g in got]
    assert rows == sorted(rows)
    assert index["procedure"]["refused"]["near_held_out"] == 0
    specs, splits = load_model_file(tmp_path / POPULATION_FILE)
    assert [s.model_id for s in specs] == ["pop_0000", "pop_0001"] and splits == ["train", "train"]
    assert specs[0].parameters == index["models"][0]["parameters"]
