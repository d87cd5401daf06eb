"""Spike-head building blocks: labels, the AP template, and spike composition across epochs."""
import numpy as np
import pytest

from noble_neuron.features.spikes import upward_crossings
from noble_neuron.surrogate.spike_head import REFRACTORY_MS, SpikeComposer, ap_template, refractory_samples, spike_labels


def test_labels_mark_each_upward_crossing_only():
    v = np.full((2, 50), -70.0)
    v[0, 10:13] = [-30.0, 5.0, -25.0]  # one AP: crosses -20 mV upward at sample 11
    v[1, 30:] = -10.0  # a step above -20 mV is one crossing too, staying up is not a second one
    rows, cols = upward_crossings(v)
    assert rows.tolist() == [0, 1] and cols.tolist() == [11, 30]
    for hw in (1, 4):
        lab = spike_labels(v, hw)
        assert lab[0].sum() == 2 * hw + 1 and lab[0, 11 - hw] == 1.0 and lab[0, 11 + hw + 1] == 0
        assert lab[1, 30] == 1.0 and lab[1, 30 + hw + 1:].sum() == 0


def test_ap_template_is_the_average_spike_until_it_falls_below_the_clip():
    v = np.full((3, 80), -70.0)
    for i, peak in enumerate([10.0, 20.0, 30.0]):
        v[i, 20:25] = [-10.0, peak, 0.0, -40.0, -60.0]
    tmpl = ap_template(v, v_clip_mV=-55.0, max_samples=10)
    np.testing.assert_allclose(tmpl, [-10.0, 20.0, 0.0, -40.0])
    with pytest.raises(ValueError, match="no action potentials"):
        ap_template(np.full((2, 80), -70.0), -55.0)


def test_composer_fires_on_rising_probability_with_refractory_and_is_chunk_invariant():
    dt = 0.06
    rng = np.random.default_rng(0)
    p = np.zeros((3, 400), dtype=np.float32)
    p[0, [50, 51, 52]] = 0.9  # one crossing → one spike
    p[1, 100] = 0.9
    p[1, 100 + int(REFRACTORY_MS / dt) - 2] = 0.9  # inside the refractory period: ignored
    p[1, 300] = 0.9  # a second spike
    p[2] = rng.uniform(0, 0.4, 400)  # never reaches the threshold
    v_clip = np.full((3, 400), -65.0, dtype=np.float32)
    tmpl = np.array([0.0, 20.0, -30.0])
    whole = SpikeComposer(3, tmpl, 0.5, dt)
    v_whole = whole.step(v_clip, p)
    assert whole.spike_samples == [[50], [100, 300], []]
    np.testing.assert_array_equal(v_whole[0, 50:54], [0.0, 20.0, -30.0, -65.0])
    assert (v_whole[2] == -65.0).all()
    chunked = SpikeComposer(3, tmpl, 0.5, dt)  # epochs of 7 samples: a template spans epoch boundaries
    v_chunks = np.concatenate([chunked.step(v_clip[:, i:i + 7], p[:, i:i + 7]) for i in range(0, 400, 7)], axis=1)
    np.testing.assert_array_equal(v_chunks, v_whole)
    assert chunked.spike_samples == whole.spike_samples
    with pytest.raises(ValueError, match="threshold"):
        SpikeComposer(1, tmpl, 1.0, dt)
    # a delay places each detected spike that many samples later (it may land in the next epoch)
    delayed = SpikeComposer(3, tmpl, 0.5, dt, delay_samples=5)
    v_del = np.concatenate([delayed.step(v_clip[:, i:i + 7], p[:, i:i + 7]) for i in range(0, 400, 7)], axis=1)
    assert delayed.spike_samples == [[55], [105, 305], []]
    np.testing.assert_array_equal(v_del[0, 55:58], tmpl)
    assert (v_del[0, 50:55] == -65.0).all()
    with pytest.raises(ValueError, match="delay"):
        SpikeComposer(1, tmpl, 0.5, dt, delay_samples=int(REFRACTORY_MS / dt))


def test_refractory_period_is_the_shortest_interspike_interval_of_the_data():
    v = np.full((2, 200), -70.0)
    v[0, [20, 60, 90]] = 0.0  # ISIs 40, 30 samples
    v[1, [10, 150]] = 0.0  # ISI 140
    assert refractory_samples(v, quantile=0.0) == 30
    assert refractory_samples(np.full((2, 50), -70.0)) is None
    composer = SpikeComposer(1, np.array([0.0]), 0.5, 0.06, refractory=30)
    p = np.zeros((1, 100), dtype=np.float32)
    p[0, [10, 35, 45]] = 0.9  # 25 samples after the first: suppressed; 35 after: a second spike
    composer.step(np.full((1, 100), -65.0, dtype=np.float32), p)
    assert composer.spike_samples == [[10, 45]]
