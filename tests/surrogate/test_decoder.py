"""Event-aware whole-trace surrogates: targets, the trace decoder, and a tiny model that learns spike counts."""
import numpy as np
import pytest

from noble_neuron.features.ephys import spike_times
from noble_neuron.features.spikes import upward_crossings
from noble_neuron.surrogate.decoder import (ap_waveform, blend_templates, bridged_voltage, coarse_times_ms, coarsen,
                                       compose_traces, phase_target, refractory_samples, spikes_from_phase)

DT = 0.06


def _template(pre_ms=0.36, post_ms=1.2):
    """A PV-like action potential sampled at DT from −pre to +post ms around its −20 mV crossing."""
    s = np.arange(-round(pre_ms / DT), round(post_ms / DT) + 1) * DT
    rise = -60.0 + 40.0 * np.exp(s / 0.08)  # −20 mV exactly at s = 0, steep upstroke
    up = -20.0 + 35.0 * np.sin(0.5 * np.pi * np.clip(s, 0, 0.15) / 0.15)  # peak +15 mV at 0.15 ms
    fall = -75.0 + 90.0 * np.exp(-(s - 0.15) / 0.2)  # repolarisation to a −75 mV trough
    return np.where(s < 0, rise, np.where(s < 0.15, up, fall)), pre_ms


def test_composed_trace_crosses_at_the_given_spike_times_to_a_fraction_of_a_sample():
    tmpl, pre = _template()
    rng = np.random.default_rng(0)
    spikes = np.sort(rng.uniform(20.0, 480.0, size=25))
    spikes = spikes[np.concatenate([[True], np.diff(spikes) > 3.0])]  # no overlapping windows
    n = 8583
    between = coarsen(-65.0 + 5.0 * np.sin(np.arange(n) * DT / 30.0)[None, :], 4)
    v = compose_traces(between, [spikes], tmpl[None, :], pre, DT, 4, n, recovery_ms=0.05)[0]
    got = spike_times(v, DT)
    assert got.size == spikes.size
    assert np.max(np.abs(got - spikes)) < 0.01  # ms: a sixth of a sample
    # between the windows the trace is the interspike voltage, interpolated to the data grid
    far = np.ones(n, bool)
    for t in spikes:
        far[int((t - 1.0) / DT):int((t + 2.0) / DT)] = False
    assert np.max(np.abs(v[far] - (-65.0 + 5.0 * np.sin(np.arange(n) * DT / 30.0))[far])) < 0.1
    # the action potential is the template's own through its fast-AHP trough, offset only before the crossing
    k = int(np.ceil(spikes[3] / DT))
    s = np.arange(k, k + int(1.2 / DT)) * DT - spikes[3]
    np.testing.assert_allclose(v[k:k + s.size], np.interp(s, np.arange(tmpl.size) * DT - pre, tmpl), atol=1e-4)
    slow = compose_traces(between, [spikes], tmpl[None, :], pre, DT, 4, n, recovery_ms=2.0)[0]
    after = int(np.ceil((spikes[3] + 1.2) / DT)) + 1
    assert slow[after] < -70.0 < v[after]  # relaxes from the −75 mV trough instead of jumping back


def test_composition_of_the_true_parts_reproduces_a_spiking_trace():
    tmpl, pre = _template()
    spikes = np.arange(30.0, 400.0, 6.5) + 0.013
    n = 8583
    base = np.full((1, n), -62.0)
    truth = compose_traces(base, [spikes], tmpl[None, :], pre, DT, 1, n)[0]  # a synthetic "detailed" trace
    st = spike_times(truth, DT)
    post = (tmpl.size - 1) * DT - pre
    wave = ap_waveform(truth[None, :], [st], DT, pre, post)
    assert wave[round(pre / DT)] == pytest.approx(-20.0, abs=1e-6)  # aligned on the exact crossing
    assert wave.max() > 5.0
    between = coarsen(bridged_voltage(truth, st, DT, pre, post)[None, :], 4)
    again = compose_traces(between, [st], wave[None, :], pre, DT, 4, n)[0]
    assert np.linalg.norm(again - truth) / np.linalg.norm(truth) < 0.01
    assert np.array_equal(np.round(spike_times(again, DT), 2), np.round(st, 2))


def test_phase_target_counts_spikes_and_decodes_back_to_their_times():
    t = coarse_times_ms(2146, DT, 4)
    spikes = np.array([40.3, 47.9, 56.0, 65.2, 75.1])
    theta = phase_target(spikes, t, onset_ms=15.0)
    assert theta[t < 15.0].max() == 0.0
    assert np.all(np.diff(theta) >= 0)
    assert theta.max() == pytest.approx(5.5)  # stops half a spike short of a 6th
    # sub-sample: off only where a knot (a spike) falls between two 0.24 ms samples and the slope changes
    assert np.max(np.abs(spikes_from_phase(theta, t) - spikes)) < 0.1
    assert spikes_from_phase(np.zeros(t.size), t).size == 0
    # a noisy, non-monotone estimate still yields each spike once, near its time
    noisy = theta + 0.2 * np.sin(t)
    assert spikes_from_phase(noisy, t).size == 5
    # wiggles around the tail (N + 1/2) or around 0 add no spike: a running maximum would keep them
    wiggly = theta + 0.6 * np.where(t > 80.0, np.sin(3.0 * t), 0.0)
    assert np.maximum.accumulate(wiggly).max() >= 6.0  # the old decoder's 6th spike
    assert spikes_from_phase(wiggly, t).size == 5
    assert spikes_from_phase(np.where(t > 15.0, 1.05 * np.sin(t) ** 8, 0.0), t).size == 0


def test_template_blend_gives_a_training_model_its_own_and_interpolates_between():
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    waves = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    np.testing.assert_allclose(blend_templates(pts[1:2], pts, waves), [[2.0, 2.0]])
    mid = blend_templates(np.array([[0.5, 0.0]]), pts, waves)[0]
    assert 1.0 < mid[0] < 2.0


def test_refractory_period_is_the_shortest_interspike_interval_of_the_data():
    """Streaming models never fire again within it; spikes are each trace's upward −20 mV crossings."""
    v = np.full((2, 50), -70.0)
    v[0, 10:13] = [-30.0, 5.0, -25.0]  # one AP: crosses -20 mV upward at sample 11
    v[1, 30:] = -10.0  # a step above -20 mV is one crossing too, staying up is not a second one
    rows, cols = upward_crossings(v)
    assert rows.tolist() == [0, 1] and cols.tolist() == [11, 30]
    v = np.full((2, 200), -70.0)
    v[0, [20, 60, 90]] = 0.0  # ISIs 40, 30 samples
    v[1, [10, 150]] = 0.0  # ISI 140
    assert refractory_samples(v, quantile=0.0) == 30
    assert refractory_samples(v) == 30  # the 0.1 % quantile of (40, 30, 140), floored
    assert refractory_samples(np.full((2, 50), -70.0)) is None  # no trace with two spikes


def test_tiny_phase_model_overfits_to_exact_spike_counts_and_carries_its_action_potentials(tiny_phase, tiny_dataset):
    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.data.dataset import open_dataset

    s = load_surrogate(tiny_phase, device="cpu")
    assert s.config.event_output == "phase" and s.config.feature_names == ("I_thr_nA", "s_thr_Hz_per_nA")
    assert set(s.ap_templates_mV) == set(s.train_model_ids)  # every training model fires: each has its own AP
    assert 0.3 <= s.ap_post_ms <= 3.0
    ds = open_dataset(tiny_dataset)
    rows = ds.rows()
    rows = rows[np.isin(ds.model_index[rows], [ds.model_ids.index(m) for m in s.train_model_ids])]
    feats = np.array([s.features_of(ds.model_ids[m]) for m in ds.model_index[rows]])
    pred = s.predict(ds.read(rows, "stimulus_nA"), feats, ds.dt_ms, check_domain=False)
    true = ds.read(rows)
    n_true = np.array([spike_times(v, ds.dt_ms).size for v in true])
    n_pred = np.array([spike_times(v, ds.dt_ms).size for v in pred])
    assert n_true.sum() >= 40 and (n_true == 0).sum() >= 5  # the data has both silent and firing traces
    assert np.mean(n_pred == n_true) >= 0.9
    assert np.abs(n_pred - n_true).max() <= 1


def test_event_model_config_and_templates_are_validated(tiny_phase):
    from noble_neuron.surrogate.checkpoint import load_checkpoint
    from noble_neuron.surrogate.model import Surrogate, SurrogateConfig

    with pytest.raises(ValueError, match="event_output must be one of"):
        SurrogateConfig(event_output="spikes")
    with pytest.raises(ValueError, match="time_coarsening > 1 needs an event model"):
        SurrogateConfig(time_coarsening=4)
    with pytest.raises(ValueError, match="whole-trace models"):
        SurrogateConfig(event_output="phase", streaming=True)
    meta = load_checkpoint(tiny_phase)["metadata"]
    for broken, match in (({"ap_templates_mV": None}, "needs ap_templates_mV"),
                          ({"ap_templates_mV": {"nobody": [0.0] * 3}}, "must be .* finite samples"),
                          ({"ap_post_ms": -1.0}, "ap_post_ms must be a positive")):
        with pytest.raises(ValueError, match=match):
            Surrogate.from_metadata({**meta, **broken}, device="cpu")


def test_surrogate_cell_on_an_event_checkpoint_fires_the_decoded_spikes_and_warns_when_its_record_is_bad(
        h, tiny_phase, tmp_path):
    from noble_neuron.surrogate.checkpoint import save_surrogate

    import gc
    import warnings

    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.neuron.cell import SurrogateCell
    from noble_neuron.surrogate.model import AccuracyWarning

    s = load_surrogate(tiny_phase, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccuracyWarning)  # no recorded evaluation: nothing to warn about
        cell = SurrogateCell("bs0", checkpoint=s)
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = 10.0, 40.0, 0.2
    nc = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)
    nc.threshold = -20.0
    fired = h.Vector()
    nc.record(fired)
    h.cvode_active(0)
    h.dt = 0.025
    h.finitialize(-65)
    h.continuerun(60.0)
    decoded = spike_times(cell.prediction_mV, s.dt_ms)
    assert decoded.size >= 2
    np.testing.assert_allclose(fired.as_numpy(), decoded, atol=0.05)  # NetCon sees exactly the decoded spikes
    del cell, stim, nc
    gc.collect()

    s.metrics["evaluation"] = {"spike_count_rel_error_firing_in_distribution": 0.9,
                               "firing_mismatch_rate_in_distribution": 0.0, "rel_l2_in_distribution": 0.1}
    path = save_surrogate(s, tmp_path / "bad.pt")
    with pytest.warns(AccuracyWarning, match="spike counts off by 90 %"):
        cell = SurrogateCell("bs0", checkpoint=load_surrogate(path, device="cpu"))
    del cell
    gc.collect()

    # a training model's steps come from its own trains, a cell given by features from its neighbours' (or the
    # network's): each is warned about by its own figures, the unseen models' for the latter
    s.metrics["evaluation"] = {"spike_count_rel_error_firing_in_distribution": 0.01,
                               "firing_mismatch_rate_in_distribution": 0.0, "rel_l2_in_distribution": 0.05,
                               "spike_count_rel_error_firing_unseen_models": 0.3,
                               "firing_mismatch_rate_unseen_models": 0.0, "rel_l2_unseen_models": 0.2}
    assert s.backbones["bs0"].trains is not None
    mixed = load_surrogate(save_surrogate(s, tmp_path / "mixed.pt"), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccuracyWarning)
        cell = SurrogateCell("bs0", checkpoint=mixed)
    with pytest.warns(AccuracyWarning, match="its unseen models, which a neuron given by features is like: spike "
                                             "counts off by 30 %"):
        other = SurrogateCell(features=mixed.features_of("bs0"), checkpoint=mixed)
    del cell, other
    gc.collect()


def test_feature_set_problems_are_named(tiny_phase, tiny_dataset, tmp_path, h):
    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.neuron.cell import SurrogateCell
    from noble_neuron.surrogate.model import SurrogateConfig
    from noble_neuron.training.train import TrainConfig, train

    with pytest.raises(ValueError, match=r"features \['rest_mV'\] are not in .*has \["):
        train(tiny_dataset, SurrogateConfig(n_layers=1, hidden_channels=4, n_modes=8, event_output="phase",
                                            feature_names=("I_thr_nA", "rest_mV")),
              TrainConfig(epochs=1), tmp_path / "x.pt", progress=False, device="cpu")
    s = load_surrogate(tiny_phase, device="cpu")
    for bad in ((0.05,), (0.05, float("nan")), (0.05, 400.0, -70.0)):
        with pytest.raises(ValueError, match=r"features must be 2 finite numbers \['I_thr_nA', 's_thr_Hz_per_nA'\]"):
            SurrogateCell(features=bad, checkpoint=s)
    with pytest.raises(ValueError, match=r"unknown feature name\(s\) \['rest_mV'\]; missing value\(s\) for \['s_thr_Hz_per_nA'\]"):
        SurrogateCell(features={"I_thr_nA": 0.05, "rest_mV": -70.0}, checkpoint=s)  # another checkpoint's set
    with pytest.raises(ValueError, match=r"feature set is \['I_thr_nA', 's_thr_Hz_per_nA'\]; missing value"):
        SurrogateCell(features={"I_thr_nA": 0.05}, checkpoint=s)
    by_name = {"s_thr_Hz_per_nA": 300.0, "I_thr_nA": 0.06}  # order-free
    np.testing.assert_array_equal(s.feature_vector(by_name), [0.06, 300.0])
    stim = np.zeros((2, s.n_samples), np.float32)
    with pytest.raises(ValueError, match=r"features must be \(2, 2\) or \(2,\) in the order"):
        s.predict(stim, np.zeros((2, 3)), s.dt_ms)
    with pytest.raises(KeyError, match="not in this surrogate's training dataset"):
        SurrogateCell("hof_017", checkpoint=s)


def test_a_phase_jump_at_the_windows_edge_is_not_a_spike():
    from types import SimpleNamespace

    from noble_neuron.surrogate.event_model import EDGE_HOLD_MS, spike_times_from_events

    fake = SimpleNamespace(dt_ms=DT, config=SimpleNamespace(time_coarsening=4))
    t = coarse_times_ms(2146, DT, 4)
    theta = phase_target(np.array([40.0, 60.0]), t, onset_ms=15.0)  # 2 spikes, tail at 2.5
    edge = theta + np.where(t > t[-1] - 0.5 * EDGE_HOLD_MS, 1.0, 0.0)  # a jump in the window's last ms
    middle = theta + np.where(t > 300.0, 1.0, 0.0)  # the same jump where the network is reliable
    got = spike_times_from_events(fake, np.stack([edge, middle]), np.array([15.0, 15.0]))
    assert got[0].size == 2 and got[1].size == 3
    np.testing.assert_allclose(got[0], [40.0, 60.0], atol=0.1)


def test_spike_times_interpolate_in_amplitude_between_the_two_nearest_steps():
    from noble_neuron.surrogate.decoder import interpolated_spike_times

    amps = np.array([0.3, 0.1, 0.2])
    spikes = [np.array([15.0, 30.0, 45.0, 60.0, 75.0]), np.array([20.0, 60.0, 100.0]),
              np.array([18.0, 40.0, 62.0, 84.0])]
    np.testing.assert_allclose(interpolated_spike_times(0.15, amps, spikes), [19.0, 50.0, 81.0, 103.0])
    np.testing.assert_allclose(interpolated_spike_times(0.125, amps, spikes), [19.5, 55.0, 90.5])  # 3.25 → 3
    np.testing.assert_allclose(interpolated_spike_times(0.2, amps, spikes), spikes[2])
    np.testing.assert_allclose(interpolated_spike_times(0.05, amps, spikes), spikes[1])  # outside: the nearest

