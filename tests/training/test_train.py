"""Training on a tiny REAL dataset (ball-and-stick HH cells): overfitting, resume, settings."""
import h5py
import numpy as np
import pytest
import torch

from noble_neuron.surrogate.checkpoint import load_checkpoint, load_surrogate
from noble_neuron.data.dataset import open_dataset
from noble_neuron.surrogate.model import SurrogateConfig
from noble_neuron.training.train import TrainConfig, relative_lp, resume_path, train

@pytest.fixture(autouse=True)
def one_thread(torch_one_thread):
    yield


@pytest.fixture()
def dataset(tiny_dataset):
    return tiny_dataset


def test_relative_lp():
    t = torch.tensor([[1.0, -1.0, 2.0], [3.0, 0.0, 0.0]])
    torch.testing.assert_close(relative_lp(t, t, 4.0), torch.zeros(2))
    torch.testing.assert_close(relative_lp(2 * t, t, 2.0), torch.ones(2))
    e = relative_lp(t + torch.tensor([[1.0, 0, 0], [0, 0, 0]]), t, 4.0)
    assert e[0].item() == pytest.approx(1 / (1 + 1 + 16) ** 0.25) and e[1].item() == 0.0


def test_train_config_validation_and_yaml(tmp_path):
    (tmp_path / "t.yaml").write_text("train:\n  epochs: 3\n  window_samples: 512\n")
    assert TrainConfig.from_yaml(tmp_path / "t.yaml") == TrainConfig(epochs=3, window_samples=512)
    with pytest.raises(ValueError, match="unknown TrainConfig key"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(loss="mse")
    with pytest.raises(ValueError, match="plateau_factor"):
        TrainConfig(plateau_factor=1.5)


def test_tiny_model_overfits_tiny_real_dataset(tiny_trained):
    out, metrics, config = tiny_trained
    assert metrics["epochs_done"] == 40 and metrics["n_train_traces"] == 30
    assert metrics["probe_rel_l4_final"] < 0.25 * metrics["probe_rel_l4_initial"], metrics
    assert metrics["history"][-1]["train_rel_l4"] < 0.3 * metrics["history"][0]["train_rel_l4"]

    s = load_surrogate(out, device="cpu")
    ds = open_dataset(metrics["dataset"]["path"])
    assert s.train_model_ids == ("bs0", "bs1", "bs2")  # 'unseen' model excluded
    assert s.stimulus_kinds == ("long_square",) and s.steps_only
    assert sorted(s.model_features) == ["bs0", "bs1", "bs2", "bs3"] and s.model_features["bs3"]["split"] == "unseen"
    feats = ds.features()
    cols = [feats["names"].index(n) for n in config.feature_names]
    train_f = feats["values"][:3][:, cols]
    np.testing.assert_allclose(s.feature_scaler.data_min, train_f.min(0))
    np.testing.assert_allclose(s.feature_scaler.data_max, train_f.max(0))
    np.testing.assert_allclose(s.features_of("bs3"), feats["values"][3][cols])
    with pytest.raises(KeyError, match="not in this surrogate's training dataset"):
        s.features_of("bs9")
    assert s.amp_range_nA == pytest.approx((-0.05, 0.3)) and s.dt_ms == pytest.approx(0.06)
    rows = ds.rows(model_id="bs2")
    v = s.predict(ds.read(rows, "stimulus_nA"), train_f[2], ds.dt_ms)
    err = relative_lp(torch.from_numpy(v), torch.from_numpy(ds.read(rows)), 4.0).mean().item()
    assert err < 0.5 * metrics["probe_rel_l4_initial"]


def test_resume_matches_uninterrupted_run(dataset, tmp_path):
    config = SurrogateConfig(n_layers=2, hidden_channels=8, n_modes=32)
    tc = dict(batch_size=4, window_samples=256, val_every_kth_amplitude=4, seed=3)
    full = tmp_path / "full" / "s.pt"
    m_full = train(dataset, config, TrainConfig(epochs=4, **tc), full, progress=False, device="cpu")
    part = tmp_path / "part" / "s.pt"
    train(dataset, config, TrainConfig(epochs=2, **tc), part, progress=False, device="cpu")
    assert load_checkpoint(resume_path(part))["epoch"] == 2
    m_resumed = train(dataset, config, TrainConfig(epochs=4, **tc), part, progress=False, device="cpu")
    assert m_full["n_val_traces"] == 6 and len(m_resumed["history"]) == 4
    a, b = load_checkpoint(full)["state_dict"], load_checkpoint(part)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    assert m_resumed["history"] == m_full["history"]
    with pytest.raises(ValueError, match="other settings"):
        train(dataset, config, TrainConfig(epochs=5, **{**tc, "seed": 4}), part, progress=False, device="cpu")


def test_dataset_without_features_is_refused(dataset, tmp_path):
    copy = tmp_path / "nofeat.h5"
    copy.write_bytes(dataset.read_bytes())
    with h5py.File(copy, "r+") as f:
        del f["features"]
    with pytest.raises(ValueError, match="extract_features"):
        train(copy, SurrogateConfig(n_layers=1, hidden_channels=4, n_modes=8), TrainConfig(epochs=1),
              tmp_path / "x.pt", progress=False)


def test_init_from_and_plateau_on(tiny_trained, dataset, tmp_path):
    src, metrics, config = tiny_trained
    with pytest.raises(ValueError, match="plateau_on"):
        TrainConfig(plateau_on="test")
    tc = TrainConfig(epochs=1, batch_size=8, lr=1e-9, val_every_kth_amplitude=0, init_from=str(src), plateau_on="train")
    m = train(dataset, config, tc, tmp_path / "cont.pt", progress=False, device="cpu")
    # starts where the source model ended (lr ~0 keeps it there), not from a random network
    assert m["probe_rel_l4_initial"] == pytest.approx(metrics["probe_rel_l4_final"], rel=1e-4)
    other = SurrogateConfig(n_layers=1, hidden_channels=4, n_modes=8)
    with pytest.raises(ValueError, match="another architecture"):
        train(dataset, other, tc, tmp_path / "bad.pt", progress=False, device="cpu")


def test_sliding_window_surrogate_learns_to_continue_the_voltage(dataset, tmp_path):
    """window_time='relative': a causal sliding-window model for network mode (trained length = window)."""
    with pytest.raises(ValueError, match="needs window_samples"):
        TrainConfig(window_time="relative")
    with pytest.raises(ValueError, match="leaves no history"):
        TrainConfig(window_time="relative", window_samples=64, history_horizon_samples=64)
    config = SurrogateConfig(n_layers=2, hidden_channels=8, n_modes=64, voltage_history=True)
    with pytest.raises(ValueError, match="window_time: relative"):
        train(dataset, config, TrainConfig(epochs=1), tmp_path / "x.pt", progress=False, device="cpu")
    tc = TrainConfig(epochs=15, batch_size=8, lr=0.01, window_samples=128, window_time="relative",
                     history_horizon_samples=16, val_every_kth_amplitude=0)
    metrics = train(dataset, config, tc, tmp_path / "w.pt", progress=False, device="cpu")
    s = load_surrogate(tmp_path / "w.pt", device="cpu")
    assert s.is_sliding and s.sliding_horizon_samples == 16 and s.n_samples == 128
    assert s.config.in_channels == 25
    assert metrics["probe_rel_l4_final"] < 0.75 * metrics["probe_rel_l4_initial"], metrics
    # the amplitude range is that of 128-sample windows: a window inside a step has the step's amplitude
    assert s.amp_range_nA == pytest.approx((-0.05, 0.3))
    with pytest.raises(ValueError, match="voltage_history_mV"):
        s.predict(np.full(128, 0.1), s.features_of("bs0"), s.dt_ms)
    with pytest.raises(ValueError, match="n_future"):
        s.predict(np.full(128, 0.1), s.features_of("bs0"), s.dt_ms, voltage_history_mV=np.full(128, -65.0),
                  n_future=17)
    v = s.predict(np.zeros((2, 128)), s.features_of("bs0"), s.dt_ms, voltage_history_mV=np.full((2, 128), -65.0),
                  n_future=16)
    assert v.shape == (2, 128) and np.isfinite(v).all()
    assert np.abs(v[:, -16:] + 65.0).max() < 5.0  # at rest with no input, it stays near rest


def test_input_only_sliding_window_surrogate(dataset, tmp_path):
    """model.sliding_window without voltage_history: current → voltage over a window, no feedback."""
    config = SurrogateConfig(n_layers=2, hidden_channels=8, n_modes=64, sliding_window=True)
    assert config.in_channels == 23 and SurrogateConfig(voltage_history=True).sliding_window
    with pytest.raises(ValueError, match="window_time: relative"):
        train(dataset, config, TrainConfig(epochs=1), tmp_path / "x.pt", progress=False, device="cpu")
    tc = dict(epochs=15, batch_size=8, lr=0.01, window_samples=128, window_time="relative",
              history_horizon_samples=16, val_every_kth_amplitude=0)
    with pytest.raises(ValueError, match="pushforward: 0"):
        train(dataset, config, TrainConfig(**tc, pushforward=2), tmp_path / "x.pt", progress=False, device="cpu")
    metrics = train(dataset, config, TrainConfig(**tc), tmp_path / "i.pt", progress=False, device="cpu")
    s = load_surrogate(tmp_path / "i.pt", device="cpu")
    assert s.is_sliding and not s.config.voltage_history and s.sliding_horizon_samples == 16
    assert metrics["n_parameters"] > 0 and "val_rel_l4" not in metrics  # no validation rows asked for
    with pytest.raises(ValueError, match="input-only"):
        s.predict(np.full(128, 0.1), s.features_of("bs0"), s.dt_ms, voltage_history_mV=np.full(128, -65.0))
    with pytest.raises(ValueError, match="n_future"):
        s.predict(np.full(128, 0.1), s.features_of("bs0"), s.dt_ms, n_future=17)
    v = s.predict(np.zeros((3, 128)), s.features_of("bs0"), s.dt_ms)
    assert v.shape == (3, 128) and np.isfinite(v).all() and np.ptp(v[:, -16:]) < 5.0  # no input: near rest
    with pytest.raises(ValueError, match="spike_parts"):
        s.predict(np.zeros(128), s.features_of("bs0"), s.dt_ms, spike_parts=True)


def test_spike_head_surrogate_has_template_calibrated_threshold_and_two_outputs(tiny_spike_head):
    """A spike head: clipped voltage + spike probability; AP template and threshold travel in the checkpoint."""
    with pytest.raises(ValueError, match="spike_head is for input-only"):
        SurrogateConfig(voltage_history=True, spike_head=True)
    with pytest.raises(ValueError, match="spike_head is for input-only"):
        SurrogateConfig(spike_head=True)  # not a sliding-window model
    s = load_surrogate(tiny_spike_head, device="cpu")
    assert s.config.spike_head and s.config.in_channels == 23
    tmpl = np.array(s.spike_template_mV)
    assert tmpl[0] >= -20.0 and tmpl.max() > 20.0 and tmpl[-1] >= s.config.v_clip_mV  # HH spikes peak ~ +40 mV
    cal = s.metrics["spike_calibration"]
    assert 0.0 < s.spike_threshold < 1.0 and cal["threshold"] == s.spike_threshold
    assert cal["spikes_reference"] > 0 and cal["n_traces"] >= 1
    x = np.r_[np.zeros(64), np.full(64, 0.3)]
    v_clip, p = s.predict(x, s.features_of("bs0"), s.dt_ms, spike_parts=True)
    assert p.shape == (128,) and 0.0 <= p.min() and p.max() <= 1.0
    v = s.predict(x, s.features_of("bs0"), s.dt_ms)
    fired = np.flatnonzero((p >= s.spike_threshold) & (np.r_[0.0, p[:-1]] < s.spike_threshold))
    assert (v.max() > 0.0) == (fired.size > 0)  # an AP is pasted where (and only where) the probability fires
    # the composer pastes an AP at every rising crossing of its threshold: one set just below this trace's peak
    thr = 0.9 * float(p.max())
    composed = s.spike_composer(1, threshold=thr, delay_samples=0).step(v_clip[None], p[None])[0]
    rises = np.flatnonzero((p >= thr) & (np.r_[0.0, p[:-1]] < thr))
    assert rises.size > 0 and composed[rises[0]] >= -20.0 and composed[rises[0]:rises[0] + 10].max() > 20.0
    np.testing.assert_array_equal(v[v < s.config.v_clip_mV], v_clip[v < s.config.v_clip_mV])
    assert 0 <= s.spike_delay_samples == cal["delay_samples"]
    from noble_neuron.surrogate.model import Surrogate

    meta = s.metadata()
    for bad, match in (({"spike_template_mV": None}, "spike_template_mV"), ({"spike_threshold": 1.5}, "spike_threshold")):
        with pytest.raises(ValueError, match=match):
            Surrogate.from_metadata({**meta, **bad}, s.state_dict(), device="cpu")


def test_diverging_training_stops_with_a_clear_error_and_keeps_the_last_good_epoch(dataset, tmp_path):
    config = SurrogateConfig(n_layers=2, hidden_channels=8, n_modes=64)
    with pytest.raises(FloatingPointError, match="training loss became .*Lower train.lr"):
        train(dataset, config, TrainConfig(epochs=5, batch_size=8, lr=1e30, val_every_kth_amplitude=0),
              tmp_path / "d.pt", progress=False, device="cpu")
    assert not (tmp_path / "d.pt").exists()  # no checkpoint with NaN weights


def test_every_shipped_training_config_parses():
    """noble_neuron/configs/*.yaml (what `noble-neuron train --config NAME` reads) are valid configs."""
    from pathlib import Path

    import noble_neuron

    paths = sorted((Path(noble_neuron.__file__).parent / "configs").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"paper", "cpu_small", "network_cpu", "network_gpu", "streaming_cpu",
                                       "streaming_cpu_stage2"}
    for path in paths:
        sc, tc = SurrogateConfig.from_yaml(path), TrainConfig.from_yaml(path)
        if sc.streaming:  # streaming models train on whole traces (crops from t = 0 and later)
            assert tc.window_time == "absolute" and tc.window_samples is None and tc.crop_steps, path.name
        else:
            assert sc.sliding_window == (tc.window_time == "relative"), path.name
    stage2 = TrainConfig.from_yaml(paths[[p.stem for p in paths].index("streaming_cpu_stage2")])
    assert stage2.closed_loop_from_epoch == 1 and stage2.init_from == "pv_fno_streaming_stage1.pt"
    network = SurrogateConfig.from_yaml(paths[[p.stem for p in paths].index("network_cpu")])
    assert network.spike_head and not network.voltage_history
