"""Training on a tiny REAL dataset (ball-and-stick HH cells): overfitting, resume, settings."""
import dataclasses
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
    (tmp_path / "t.yaml").write_text("train:\n  epochs: 3\n  crop_steps: 512\n")
    assert TrainConfig.from_yaml(tmp_path / "t.yaml") == TrainConfig(epochs=3, crop_steps=512)
    with pytest.raises(ValueError, match="unknown TrainConfig key"):
        TrainConfig.from_dict({"epoch": 3})
    for removed in ("window_samples", "window_time", "history_horizon_samples", "pushforward"):  # full traces only
        with pytest.raises(ValueError, match=f"unknown TrainConfig key.*{removed}"):
            TrainConfig.from_dict({removed: 1})
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
    tc = dict(batch_size=4, val_every_kth_amplitude=4, seed=3)
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
    assert {p.stem for p in paths} >= {"paper", "cpu_small", "streaming_cpu", "streaming_cpu_stage2"}
    assert not [p.stem for p in paths if p.stem.startswith("network_")]  # the sliding-window recipes are gone
    for path in paths:
        sc, tc = SurrogateConfig.from_yaml(path), TrainConfig.from_yaml(path)
        # streaming models train on crops of whole traces (from t = 0 and later), whole-trace models on full ones
        assert (tc.crop_steps is not None) == sc.streaming, path.name
    stage2 = TrainConfig.from_yaml(paths[[p.stem for p in paths].index("streaming_cpu_stage2")])
    assert stage2.closed_loop_from_epoch == 1 and stage2.init_from == "pv_fno_streaming_stage1.pt"
    network = SurrogateConfig.from_yaml(paths[[p.stem for p in paths].index("streaming_cpu")])
    assert network.streaming and network.time_coarsening == 5


def test_cosine_schedule_anneals_to_min_lr_and_feature_noise_is_seeded(dataset, tmp_path):
    config = SurrogateConfig(n_layers=1, hidden_channels=4, n_modes=8)
    for bad in (dict(schedule="step"), dict(feature_noise=-0.1), dict(feature_noise=float("nan"))):
        with pytest.raises(ValueError, match="schedule|feature_noise"):
            TrainConfig(**bad)
    tc = TrainConfig(epochs=3, batch_size=8, lr=0.01, min_lr=1e-4, schedule="cosine", val_every_kth_amplitude=0)
    m = train(dataset, config, tc, tmp_path / "cos.pt", progress=False, device="cpu")
    lrs = [e["lr"] for e in m["history"]]
    assert lrs[0] == pytest.approx(0.01) and lrs[0] > lrs[1] > lrs[2] > 1e-4  # lr used in each epoch, falling
    noisy = [train(dataset, config, dataclasses.replace(tc, feature_noise=0.3), tmp_path / f"n{i}.pt",
                   progress=False, device="cpu")["history"][-1]["train_rel_l4"] for i in range(2)]
    assert noisy[0] == noisy[1]  # seeded: the same noise every run
    assert noisy[0] != m["history"][-1]["train_rel_l4"]  # and it does reach the network
