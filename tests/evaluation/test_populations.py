"""FI-curve populations compared by summary statistics (noble_neuron.evaluation.populations)."""
import numpy as np
import pytest

from noble_neuron.evaluation.populations import curve_statistics, population_distances


def _curve(rheobase, jump_at, jump_Hz, slope=300.0):
    a = np.linspace(-0.1, 0.5, 61)
    r = np.where(a >= rheobase, 10.0, 0.0) + np.where(a >= jump_at, jump_Hz + slope * (a - jump_at), 0.0)
    return a, r


def test_statistics_of_a_stuttering_then_tonic_curve():
    st = curve_statistics(*_curve(0.05, 0.25, 150.0))
    assert st["rheobase_nA"] == pytest.approx(0.05, abs=0.011)
    assert st["rate_at_200pA_Hz"] == pytest.approx(10.0)
    assert st["rate_at_300pA_Hz"] == pytest.approx(10.0 + 150.0 + 300.0 * 0.05, abs=1.0)
    assert st["largest_jump_Hz"] == pytest.approx(150.0 + 300.0 * 0.02, abs=6.0)
    silent = curve_statistics(np.array([0.0, 0.1]), np.array([0.0, 0.0]))
    assert np.isnan(silent["rheobase_nA"])


def test_distances_are_zero_for_the_same_population_and_grow_with_a_shift():
    ref = [_curve(0.04 + 0.01 * i, 0.2 + 0.02 * i, 120.0 + 10 * i) for i in range(8)]
    same = population_distances(ref, ref)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.values())
    shifted = population_distances([_curve(0.04 + 0.01 * i, 0.3 + 0.02 * i, 60.0) for i in range(8)], ref)
    assert shifted["largest_jump_Hz"] > 1.0 and shifted["rate_at_300pA_Hz"] > 0.5
    assert shifted["rheobase_nA"] == pytest.approx(0.0, abs=1e-9)


def test_undefined_curves_and_empty_populations_give_undefined_distances():
    nan = curve_statistics(np.array([0.1, 0.2]), np.array([np.nan, np.nan]))
    assert all(np.isnan(v) for v in nan.values())
    got = population_distances([_curve(0.05, 0.25, 100.0)], [])
    assert set(got) == set(nan) and all(v is None for v in got.values())
