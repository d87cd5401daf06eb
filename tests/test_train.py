"""Training on a tiny REAL dataset (ball-and-stick HH cells): overfitting, resume, settings."""
import h5py
import numpy as np
import pytest
import torch

from conftest import DATA, short_step
from noble_neuron.checkpoint import load_checkpoint, load_surrogate
from noble_neuron.dataset import open_dataset
from noble_neuron.surrogate_model import SurrogateConfig
from noble_neuron.train import TrainConfig, relative_lp, resume_path, train

# (gnabar_hh S/cm2, cm uF/cm2) → distinct (I_thr, s_thr) pairs on this grid ((0.04, 750), (0.04, 375), (0.06, 517)); the last model is held out as 'unseen'
MODELS = [(0.12, 1.0), (0.16, 0.8), (0.13, 1.4), (0.11, 1.2)]
AMPS_NA = [-0.05, 0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3]


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models: thread sync costs more than it saves, and on a busy machine far more.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    from noble_neuron.datagen import generate
    from noble_neuron.feature_table import extract_features
    from noble_neuron.simulate import CellSpec

    specs = [CellSpec(f"bs{i}", str(DATA / "ball_stick.hoc"), "BallStick", None,
                      {"somatic.gnabar_hh": g, "all.cm": cm, "global.celsius": 6.3}) for i, (g, cm) in enumerate(MODELS)]
    out = generate(specs, [short_step(a, 60.0) for a in AMPS_NA], tmp_path_factory.mktemp("data") / "bs.h5",
                   splits=["train", "train", "train", "unseen"], engine="serial", progress=False)
    extract_features(out, progress=False)
    return out


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


def test_tiny_model_overfits_tiny_real_dataset(dataset, tmp_path):
    config = SurrogateConfig(n_layers=2, hidden_channels=12, n_modes=128)
    out = tmp_path / "s.pt"
    metrics = train(dataset, config, TrainConfig(epochs=40, batch_size=8, lr=0.01, val_every_kth_amplitude=0),
                    out, progress=False, device="cpu")
    assert metrics["epochs_done"] == 40 and metrics["n_train_traces"] == 30
    assert metrics["probe_rel_l4_final"] < 0.25 * metrics["probe_rel_l4_initial"], metrics
    assert metrics["history"][-1]["train_rel_l4"] < 0.3 * metrics["history"][0]["train_rel_l4"]

    s = load_surrogate(out, device="cpu")
    ds = open_dataset(dataset)
    assert s.train_model_ids == ("bs0", "bs1", "bs2")  # 'unseen' model excluded
    feats = ds.features()
    cols = [feats["names"].index(n) for n in config.feature_names]
    train_f = feats["values"][:3][:, cols]
    np.testing.assert_allclose(s.feature_scaler.data_min, train_f.min(0))
    np.testing.assert_allclose(s.feature_scaler.data_max, train_f.max(0))
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
