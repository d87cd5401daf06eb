"""The AdEx baseline: NEURON mechanism = numpy integrator, the fit recovers a known neuron, clear errors."""
import dataclasses
import json

import numpy as np
import pytest

from noble_neuron.baselines.adex import (AdExParams, fit_spiking, fit_subthreshold, load_fits, matched_fraction,
                                         save_fits, simulate_adex)
from noble_neuron.features.spike_metrics import coincidence_gamma

TRUE = AdExParams(C_nF=0.06, gl_uS=0.013, el_mV=-74.0, vt_mV=-58.0, delta_t_mV=1.5, a_uS=4e-4, b_nA=0.005,
                  tau_w_ms=80.0, v_reset_mV=-66.0, t_ref_ms=0.8)
DT = 0.06


def ou_current(n_samples: int, mean: float, sigma: float, seed: int, tau_ms: float = 5.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty(n_samples)
    x[0] = mean
    a = np.exp(-DT / tau_ms)
    for k in range(1, n_samples):
        x[k] = mean + (x[k - 1] - mean) * a + sigma * np.sqrt(1 - a * a) * rng.standard_normal()
    x[:int(15.0 / DT)] = 0.0  # on from 15 ms, as the datasets' stimuli: the cell starts at rest
    return x


def neuron_spikes(h, params: AdExParams, amp_nA: float, tstop: float, *, cvode: bool):
    from noble_neuron.neuron.adex_cell import AdExCell

    cell = AdExCell(params)
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = 0.0, 1e9, amp_nA
    times, v = h.Vector(), h.Vector().record(cell.soma(0.5)._ref_v)
    nc = cell.spike_source()
    nc.record(times)
    h.cvode_active(int(cvode))
    h.dt = 0.025
    h.finitialize(params.el_mV)
    h.continuerun(tstop)
    h.cvode_active(0)
    return np.array(times), np.array(v)


@pytest.mark.parametrize("cvode", [False, True])
def test_neuron_mechanism_fires_as_the_numpy_integrator(h, cvode):
    t_nrn, v = neuron_spikes(h, TRUE, 0.3, 200.0, cvode=cvode)
    _, (t_np,) = simulate_adex(TRUE, np.full(int(200.0 / DT), 0.3), DT, v0_mV=TRUE.el_mV, substeps=12)
    assert t_nrn.size >= 15 and abs(t_nrn.size - t_np.size) <= 1
    n = min(t_nrn.size, t_np.size, 10)
    assert np.max(np.abs(t_nrn[:n] - t_np[:n])) < 0.3  # ms, over the first 10 spikes
    assert v.max() > -20.0  # the spike is drawn: the package's -20 mV detector sees it in a recording


def test_no_current_no_spikes_and_rest_at_el(h):
    t_nrn, v = neuron_spikes(h, TRUE, 0.0, 100.0, cvode=False)
    assert t_nrn.size == 0 and abs(v[-1] - TRUE.el_mV) < 0.01


def test_fit_recovers_a_known_adex_from_its_noise_responses():
    n = int(2000.0 / DT)
    currents = np.array([ou_current(n, m, s, seed) for seed, (m, s) in enumerate([(0.15, 0.08), (0.22, 0.06),
                                                                                 (0.1, 0.1), (0.2, 0.08)])])
    v, spikes = simulate_adex(TRUE, currents, DT, v0_mV=TRUE.el_mV, substeps=3)
    assert all(s.size > 5 for s in spikes)
    base = fit_subthreshold(v[:2], currents[:2], DT)
    assert base.C_nF == pytest.approx(TRUE.C_nF, rel=0.1)
    assert base.gl_uS == pytest.approx(TRUE.gl_uS, rel=0.25)
    assert base.el_mV == pytest.approx(TRUE.el_mV, abs=0.5)
    fitted, loss = fit_spiking(base, v[:2], currents[:2], DT, population=32, elite=6, iterations=5)
    _, held = simulate_adex(fitted, currents[2:], DT, v0_mV=TRUE.el_mV, substeps=3)
    for target, got in zip(spikes[2:], held):  # held-out noise: the spike times come back
        assert matched_fraction(target, got) > 0.8
        assert coincidence_gamma(target, got, 2.0, 2000.0) > 0.7


def test_matched_fraction_is_bounded_where_gamma_is_not():
    a = np.arange(0.0, 1000.0, 4.0)  # 250 Hz
    b = a + 1.5
    assert 0.0 <= matched_fraction(a, b) <= 1.0
    assert matched_fraction(a, a) == 1.0 and matched_fraction(a, np.array([])) == 0.0
    assert matched_fraction(np.array([]), np.array([])) == 1.0


def test_fits_round_trip_and_bad_files(tmp_path):
    path = save_fits({"m0": TRUE}, tmp_path / "fits.json", {"data": "x.h5"})
    assert load_fits(path) == {"m0": TRUE}
    doc = json.loads(path.read_text())
    doc["schema"] = "something else"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="not an AdEx fit file"):
        load_fits(path)
    with pytest.raises(FileNotFoundError, match="fit-adex"):
        load_fits(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="unknown AdEx parameters"):
        AdExParams.from_dict({**TRUE.to_dict(), "tau_x": 1.0})


def test_bad_parameters_and_inputs_are_refused():
    with pytest.raises(ValueError, match="C_nF must be > 0"):
        dataclasses.replace(TRUE, C_nF=-1.0)
    with pytest.raises(ValueError, match="v_reset_mV"):
        dataclasses.replace(TRUE, v_reset_mV=0.0)
    with pytest.raises(ValueError, match="finite"):
        dataclasses.replace(TRUE, a_uS=float("nan"))
    with pytest.raises(ValueError, match="parameter sets for"):
        simulate_adex([TRUE, TRUE], np.zeros((3, 10)), DT)
    flat = np.full((2, int(1000 / DT)), -70.0)
    with pytest.raises(ValueError, match="do not fluctuate|not positive"):
        fit_subthreshold(flat, np.zeros_like(flat), DT)


def test_adex_cell_names_the_fix_for_an_unknown_model():
    from noble_neuron.neuron.adex_cell import AdExCell

    with pytest.raises(KeyError, match="fit-adex"):
        AdExCell("no_such_model")


def test_network_checkpoint_warning_carries_its_recorded_figures_and_the_baseline():
    from noble_neuron.surrogate.checkpoint import SHIPPED_NETWORK_CHECKPOINT, load_surrogate

    s = load_surrogate(SHIPPED_NETWORK_CHECKPOINT, device="cpu")
    cl = s.metrics["closed_loop"]
    caveat = s.closed_loop_caveat()
    assert f"{cl['rate_Hz_surrogate_mean']:.1f} Hz vs {cl['rate_Hz_detailed_mean']:.1f} Hz" in caveat
    assert f"fitted AdEx in the same run: {cl['adex_baseline']['rate_Hz_adex_mean']:.1f} Hz" in caveat
