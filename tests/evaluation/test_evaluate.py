"""Accuracy metrics and the accuracy report (tiny real dataset + tiny trained FNO)."""
import json

import numpy as np
import pytest
import torch

from noble_neuron.evaluation.evaluate import HEADLINE_KEYS, trace_metrics, write_report
from noble_neuron.surrogate.model import SurrogateConfig
from noble_neuron.training.train import TrainConfig, train


def _spiky(n_spikes, L=1000, dt=0.06):
    v = np.full(L, -70.0)
    t = np.arange(L) * dt
    for k in range(n_spikes):
        v += 100 * np.exp(-0.5 * ((t - 15 - 8 * k) / 0.2) ** 2)
    return v


def test_trace_metrics_identity_and_mismatch():
    true = np.stack([_spiky(0), _spiky(3), _spiky(5)])
    same = trace_metrics(true, true, 0.06, (10.0, 58.0))
    assert same["rel_l2_mean"] == 0.0
    assert same["spike_count_exact_match_rate"] == 1.0 and same["firing_mismatches"] == 0
    assert same["spike_time_error_median_ms"] == 0.0
    pred = np.stack([_spiky(1), _spiky(3), np.full(1000, -70.0)])  # false positive, exact, silent
    m = trace_metrics(pred, true, 0.06, (10.0, 58.0))
    assert m["firing_mismatches"] == 2 and m["spike_count_exact_match_rate"] == pytest.approx(1 / 3)
    assert m["rel_l2_mean"] > 0.05


def test_spikes_outside_the_window_are_not_compared():
    # 4 spikes inside [10, 40) in both; the prediction has an extra spike after the window (a rebound)
    true, pred = _spiky(4), _spiky(6)
    m = trace_metrics(pred[None], true[None], 0.06, (10.0, 40.0))
    assert m["spike_count_exact_match_rate"] == 1.0 and m["spike_time_error_median_ms"] == 0.0


def test_accuracy_report_and_hull_sampling(tiny_dataset, torch_one_thread, tmp_path):
    dataset = tiny_dataset
    ckpt = tmp_path / "s.pt"
    train(dataset, SurrogateConfig(n_layers=2, hidden_channels=8, n_modes=64),
          TrainConfig(epochs=3, batch_size=8, val_every_kth_amplitude=3), ckpt, progress=False, device="cpu")
    result = write_report(ckpt, dataset, tmp_path / "out", n_sampled=5, efel_limit=5, progress=False)
    saved = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert set(HEADLINE_KEYS) <= set(saved)
    assert 0 < saved["rel_l2_unseen_models"] < 1 and 0 <= saved["spike_count_exact_match_rate_unseen_models"] <= 1
    assert saved["groups"]["unseen_models"]["n_traces"] == 10
    # the headline figure is the mean relative L2 of exactly the unseen model's traces, recomputed here
    from noble_neuron.data.dataset import open_dataset
    from noble_neuron.surrogate.checkpoint import load_surrogate as _load

    ds, sur = open_dataset(dataset), _load(ckpt, device="cpu")
    rows = ds.rows(model_id="bs3", kind="long_square")
    pred = sur.predict(ds.read(rows, "stimulus_nA"), np.tile(sur.features_of("bs3"), (rows.size, 1)), ds.dt_ms)
    true = ds.read(rows)
    rel = np.linalg.norm(pred - true, axis=1) / np.linalg.norm(true, axis=1)
    assert saved["rel_l2_unseen_models"] == pytest.approx(float(rel.mean()), rel=1e-5)
    assert saved["groups"]["in_distribution"]["n_traces"] > 0
    for png in ("accuracy_traces.png", "accuracy_fi_unseen.png", "accuracy_sampled_fi.png"):
        assert (tmp_path / "out" / png).stat().st_size > 5000
    assert result["sampled_neurons"]["n"] == 5

    from noble_neuron.surrogate.checkpoint import load_surrogate

    s = load_surrogate(ckpt, device="cpu")
    pts = s.sample_features(200, seed=1)
    assert pts.shape == (200, 2) and s.in_hull(pts).all()
    assert np.array_equal(pts, s.sample_features(200, seed=1))
