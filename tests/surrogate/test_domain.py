"""The feature domain: hull membership, exact uniform sampling inside the hull in any dimension,
and the user's feature values checked against the checkpoint's feature set."""
import itertools
import time
from types import SimpleNamespace

import numpy as np
import pytest

from noble_neuron.features.scaler import FeatureScaler
from noble_neuron.surrogate.domain import FeatureDomain


class Domain(FeatureDomain):
    def __init__(self, hull_points: np.ndarray, names: tuple[str, ...]):
        f = len(names)
        self.config = SimpleNamespace(feature_names=names, scaled_low=0.5, scaled_high=3.5)
        self.feature_scaler = FeatureScaler(names, (0.0,) * f, (3.0,) * f, 0.5, 3.5)  # raw x ↦ x + 0.5
        self.hull_points = hull_points
        self.model_features = {}
        self._delaunay = None


def test_samples_are_uniform_inside_a_six_dimensional_hull_and_fast():
    names = tuple(f"f{i}" for i in range(6))
    cube = np.array(list(itertools.product([0.5, 3.5], repeat=6)), dtype=float)  # 64 vertices
    d = Domain(cube, names)
    start = time.perf_counter()
    pts = d.sample_features(4000, seed=0)
    assert time.perf_counter() - start < 10.0  # rejection from a bounding box would not scale with dimension
    assert pts.shape == (4000, 6) and d.in_hull(pts).all()
    scaled = d.feature_scaler.transform(pts)
    np.testing.assert_allclose(scaled.mean(axis=0), 2.0, atol=0.08)  # uniform in the cube: its centre
    np.testing.assert_allclose(scaled.std(axis=0), 3.0 / np.sqrt(12), atol=0.05)  # and its spread
    np.testing.assert_array_equal(pts, d.sample_features(4000, seed=0))
    assert not d.in_hull(np.full((1, 6), 3.2)).any()  # raw 3.2 → scaled 3.7: outside


def test_a_simplex_hull_is_filled_not_its_bounding_box():
    tri = np.array([[0.5, 0.5], [3.5, 0.5], [0.5, 3.5]])
    d = Domain(tri, ("a", "b"))
    scaled = d.feature_scaler.transform(d.sample_features(3000, seed=2))
    assert (scaled.sum(axis=1) <= 4.0 + 1e-9).all()  # below the hypotenuse
    np.testing.assert_allclose(scaled.mean(axis=0), 1.5, atol=0.05)  # the triangle's centroid


def test_feature_values_by_name_or_in_order():
    d = Domain(np.eye(3) + 0.5, ("I_thr_nA", "s_thr_Hz_per_nA", "input_resistance_MOhm"))
    np.testing.assert_array_equal(d.feature_vector({"input_resistance_MOhm": 90, "I_thr_nA": 0.1,
                                                    "s_thr_Hz_per_nA": 400}), [0.1, 400, 90])
    np.testing.assert_array_equal(d.feature_vector([0.1, 400, 90]), [0.1, 400, 90])
    with pytest.raises(ValueError, match=r"unknown feature name\(s\) \['tau_ms'\]"):
        d.feature_vector({"I_thr_nA": 0.1, "s_thr_Hz_per_nA": 400, "input_resistance_MOhm": 90, "tau_ms": 8})
    with pytest.raises(ValueError, match=r"missing value\(s\) for \['input_resistance_MOhm'\]"):
        d.feature_vector({"I_thr_nA": 0.1, "s_thr_Hz_per_nA": 400})
    for bad in ([0.1, 400], [0.1, 400, float("nan")], ["a", "b", "c"], {"I_thr_nA": 0.1, "s_thr_Hz_per_nA": 400,
                                                                       "input_resistance_MOhm": None}):
        with pytest.raises(ValueError, match=r"features must be 3 finite numbers"):
            d.feature_vector(bad)
