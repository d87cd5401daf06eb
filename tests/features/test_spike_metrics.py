"""Coincidence factor Gamma (Kistler et al. 1997): identical trains 1, unrelated trains ~0."""
import numpy as np

from noble_neuron.features.spike_metrics import coincidence_gamma


def test_coincidence_gamma_limits():
    a = np.arange(10.0, 1000.0, 25.0)
    assert coincidence_gamma(a, a, 2.0, 1000.0) == 1.0
    assert coincidence_gamma(a, a + 1.5, 2.0, 1000.0) == 1.0  # within the window
    assert coincidence_gamma(a, a + 10.0, 2.0, 1000.0) < 0.0  # all misses: below chance
    assert coincidence_gamma(np.array([]), np.array([]), 2.0, 1000.0) == 1.0
    assert coincidence_gamma(a, np.array([]), 2.0, 1000.0) == 0.0
    rng = np.random.default_rng(0)
    chance = [coincidence_gamma(a, np.sort(rng.uniform(0, 1000, a.size)), 2.0, 1000.0) for _ in range(200)]
    assert abs(np.mean(chance)) < 0.05
