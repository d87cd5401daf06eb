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


def test_psth_explained_variance_scores_timing_and_rate():
    import numpy as np

    from noble_neuron.features.spike_metrics import psth_explained_variance

    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 2000, 60))
    assert psth_explained_variance(a, a, 2000.0) == 1.0
    assert psth_explained_variance(a, a + 1.0, 2000.0) > 0.95  # 1 ms jitter under a 10 ms kernel
    assert psth_explained_variance(a, np.sort(rng.uniform(0, 2000, 60)), 2000.0) < 0.3  # same rate, other times
    assert psth_explained_variance(a, np.sort(np.r_[a, a + 0.5]), 2000.0) < 0.0  # right times, twice the rate
    assert np.isnan(psth_explained_variance(np.array([]), a, 2000.0))


def test_subthreshold_rmse_cuts_spikes_out():
    import numpy as np

    from noble_neuron.features.spike_metrics import subthreshold_rmse_mV

    t = np.arange(0, 100, 0.1)
    a, b = np.full(t.size, -70.0), np.full(t.size, -71.0)
    b[(t > 49) & (t < 51)] = 30.0  # a spike in b only
    assert subthreshold_rmse_mV(t, a, b, [np.array([50.0])]) == 1.0
    assert subthreshold_rmse_mV(t, a, b, []) > 10.0
