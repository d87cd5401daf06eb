"""Surrogate: config, parameter counts, batched predict, domain checks, checkpoints."""
import json
import warnings

import numpy as np
import pytest
import torch

from noble_neuron.surrogate.checkpoint import CheckpointError, load_checkpoint, load_surrogate, save_surrogate
from noble_neuron.features.scaler import FeatureScaler
from noble_neuron.surrogate.model import (DomainWarning, Surrogate, SurrogateConfig, build_fno, count_parameters)

L = 200
DT = 0.06
TRAIN_FEATURES = np.array([[0.04, 0.0], [0.08, 0.0], [0.04, 1250.0], [0.07, 900.0]])


@pytest.fixture
def surrogate():
    torch.manual_seed(0)
    config = SurrogateConfig(n_layers=2, hidden_channels=8, n_modes=16)
    scaler = FeatureScaler.fit(TRAIN_FEATURES, config.feature_names)
    return Surrogate(build_fno(config), config, dt_ms=DT, n_samples=L, amp_range_nA=(-0.1, 0.4),
                     feature_scaler=scaler, hull_points=scaler.transform(TRAIN_FEATURES),
                     train_model_ids=["a", "b", "c", "d"], metrics={"train_rel_l4": 0.1}, device="cpu")


def _steps(amps):
    x = np.zeros((len(amps), L), dtype=np.float32)
    x[:, 20:150] = np.asarray(amps, dtype=np.float32)[:, None]
    return x


FEAT_IN = np.array([0.05, 300.0])


def test_presets_and_parameter_counts():
    paper = SurrogateConfig.paper()
    assert (paper.n_layers, paper.hidden_channels, paper.n_modes, paper.projection_channel_ratio) == (12, 24, 256, 4.0)
    assert paper.in_channels == 23
    n = count_parameters(build_fno(paper))
    assert 1.7e6 < n < 1.9e6, n
    assert count_parameters(build_fno(SurrogateConfig.cpu_small())) < 0.5e6


def test_config_dict_yaml_roundtrip_and_unknown_keys(tmp_path):
    c = SurrogateConfig.cpu_small(hidden_channels=16)
    assert SurrogateConfig.from_dict(c.to_dict()) == c
    (tmp_path / "m.yaml").write_text("model:\n  preset: paper\n  n_modes: 128\n")
    assert SurrogateConfig.from_yaml(tmp_path / "m.yaml") == SurrogateConfig.paper(n_modes=128)
    with pytest.raises(ValueError, match="unknown SurrogateConfig key"):
        SurrogateConfig.from_dict({"n_layer": 3})
    with pytest.raises(ValueError, match="n_modes"):
        SurrogateConfig(n_modes=0)


def test_predict_shapes_and_no_warning_in_domain(surrogate):
    x = _steps([0.0, 0.1, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = surrogate.predict(x, FEAT_IN, DT)
    assert v.shape == (3, L) and v.dtype == np.float32 and np.isfinite(v).all()
    assert surrogate.predict(x[1], FEAT_IN, DT).shape == (L,)
    with warnings.catch_warnings():  # training models themselves (hull vertices), even as float32, are inside
        warnings.simplefilter("error")
        surrogate.predict(_steps([0.1] * 4), torch.tensor(TRAIN_FEATURES, dtype=torch.float32), DT)


def test_batched_equals_per_item_and_torch_equals_numpy(surrogate):
    amps = np.linspace(-0.1, 0.4, 7)
    x = _steps(amps)
    feats = np.array([[0.05 + 0.002 * i, 300.0 + 10 * i] for i in range(7)])
    batched = surrogate.predict(x, feats, DT, batch_size=3)
    single = np.stack([surrogate.predict(x[i], feats[i], DT) for i in range(7)])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5 * np.abs(single).max())
    from_torch = surrogate.predict(torch.from_numpy(x), torch.from_numpy(feats), DT, batch_size=64)
    np.testing.assert_allclose(from_torch, batched, rtol=1e-5, atol=1e-4)
    broadcast = surrogate.predict(x, feats[2], DT)
    np.testing.assert_allclose(broadcast[2], batched[2], rtol=1e-5, atol=1e-4)


def test_wrong_dt_and_non_finite_inputs(surrogate):
    x = _steps([0.1, 0.2])
    with pytest.raises(ValueError, match=r"dt_ms=0\.025.*0\.06"):
        surrogate.predict(x, FEAT_IN, 0.025)
    bad = x.copy()
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf \(rows \[1\]\)"):
        surrogate.predict(bad, FEAT_IN, DT)
    with pytest.raises(ValueError, match="features contain NaN"):
        surrogate.predict(x, [np.nan, 1.0], DT)
    with pytest.raises(ValueError, match=r"features must be \(2, 2\)"):
        surrogate.predict(x, np.ones((3, 2)), DT)


def test_amplitude_out_of_range_warns_or_raises(surrogate):
    x = _steps([0.1, 0.8])
    with pytest.warns(DomainWarning, match=r"index \[1\].*amplitude outside the trained range"):
        v = surrogate.predict(x, FEAT_IN, DT)
    assert np.isfinite(v).all()
    with pytest.raises(ValueError, match="amplitude outside"):
        surrogate.predict(x, FEAT_IN, DT, strict=True)


def test_features_outside_hull_warn_or_raise(surrogate):
    x = _steps([0.1, 0.1, 0.1])
    # inside the bounding box but outside the hull (triangle corner near (0.08, 1250) is not a training point)
    feats = np.array([[0.05, 300.0], [0.079, 1240.0], [0.04, 0.0]])
    assert surrogate.in_hull(feats).tolist() == [True, False, True]
    with pytest.warns(DomainWarning, match=r"index \[1\].*convex hull"):
        surrogate.predict(x, feats, DT)
    with pytest.raises(ValueError, match="convex hull"):
        surrogate.predict(x, feats, DT, strict=True)


def test_other_length_warns(surrogate):
    with pytest.warns(DomainWarning, match="trained length 200"):
        v = surrogate.predict(np.zeros((1, 150), np.float32), FEAT_IN, DT)
    assert v.shape == (1, 150)


def test_non_finite_output_raises(surrogate):
    with torch.no_grad():
        next(surrogate.model.parameters()).fill_(float("nan"))
    with pytest.raises(RuntimeError, match="NaN/inf"):
        surrogate.predict(_steps([0.1]), FEAT_IN, DT)


def test_checkpoint_roundtrip_preserves_outputs_and_metadata(surrogate, tmp_path):
    path = save_surrogate(surrogate, tmp_path / "s.pt")
    loaded = load_surrogate(path, device="cpu")
    x = _steps([-0.05, 0.2, 0.35])
    np.testing.assert_array_equal(loaded.predict(x, FEAT_IN, DT), surrogate.predict(x, FEAT_IN, DT))
    assert loaded.metadata() == surrogate.metadata()
    assert loaded.config == surrogate.config and loaded.amp_range_nA == (-0.1, 0.4)
    assert loaded.train_model_ids == ("a", "b", "c", "d") and loaded.metrics == {"train_rel_l4": 0.1}
    raw = load_checkpoint(path)
    assert raw["schema"] == "noble_neuron.checkpoint" and raw["schema_version"] == 1
    assert raw["metadata"]["feature_scaler"]["names"] == ["I_thr_nA", "s_thr_Hz_per_nA"]
    assert raw["metadata"]["dt_ms"] == DT and raw["metadata"]["n_samples"] == L


def test_bad_checkpoints_raise_checkpoint_error(surrogate, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_surrogate(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 64)
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_surrogate(garbage)
    good = save_surrogate(surrogate, tmp_path / "good.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_surrogate(truncated)
    other = tmp_path / "other.pt"
    torch.save({"schema": "noble_neuron.checkpoint", "schema_version": 2, "metadata_json": "{}", "state_dict": {}},
               other)
    with pytest.raises(CheckpointError, match="schema_version 2.*reads schema_version 1"):
        load_surrogate(other)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a noble_neuron checkpoint"):
        load_surrogate(foreign)
    pickled = tmp_path / "pickled.pt"
    torch.save({"schema": "noble_neuron.checkpoint", "obj": FeatureScaler.fit(TRAIN_FEATURES, ("a", "b"))}, pickled)
    with pytest.raises(CheckpointError, match="not a safe weights file"):
        load_surrogate(pickled)


def _edited_copy(src, dst, edit):
    """A copy of checkpoint `src` at `dst` whose metadata went through `edit` (a function changing it in place)."""
    raw = torch.load(src, weights_only=True)
    meta = json.loads(raw["metadata_json"])
    edit(meta)
    raw["metadata_json"] = json.dumps(meta)
    torch.save(raw, dst)
    return dst


def _as_written_with_sliding_models(meta, sliding_window=False, spike_head=False, voltage_history=False, horizon=None):
    """Metadata as noble_neuron wrote it while network mode also had sliding-window models."""
    meta["config"].update(sliding_window=sliding_window, spike_head=spike_head, voltage_history=voltage_history,
                          spike_label_half_width=1)
    meta.update(sliding_horizon_samples=horizon, spike_template_mV=[0.0, 20.0] if spike_head else None,
                spike_threshold=0.5, spike_delay_samples=0)


def test_checkpoints_of_the_sliding_window_era_load_and_sliding_window_ones_are_refused(surrogate, tmp_path):
    from noble_neuron.surrogate.checkpoint import LEGACY_METADATA_KEYS, SHIPPED_NETWORK_CHECKPOINT

    # network checkpoints of that era (the one shipped until 0.3) were written with them: a streaming model that
    # "implied" sliding_window/spike_head
    legacy_network = _edited_copy(SHIPPED_NETWORK_CHECKPOINT, tmp_path / "legacy_network.pt",
                                  lambda m: _as_written_with_sliding_models(m, sliding_window=True, spike_head=True,
                                                                            horizon=50))
    raw = json.loads(torch.load(legacy_network, weights_only=True)["metadata_json"])
    assert raw["config"]["streaming"] and raw["config"]["sliding_window"] and raw["config"]["spike_head"]
    network = load_surrogate(legacy_network, device="cpu")
    assert network.is_streaming and not set(network.metadata()) & set(LEGACY_METADATA_KEYS)
    assert "sliding_window" not in network.metadata()["config"]
    assert network.metadata() == load_surrogate(SHIPPED_NETWORK_CHECKPOINT, device="cpu").metadata()
    # a whole-trace checkpoint of that time: same model, same outputs
    good = save_surrogate(surrogate, tmp_path / "good.pt")
    old = load_surrogate(_edited_copy(good, tmp_path / "old.pt", _as_written_with_sliding_models), device="cpu")
    assert old.metadata() == surrogate.metadata() and not old.is_streaming
    x = _steps([0.0, 0.2])
    np.testing.assert_array_equal(old.predict(x, FEAT_IN, DT), surrogate.predict(x, FEAT_IN, DT))
    # real sliding-window models: input-only, closed loop on their own voltage, spike head
    for name, kind in (("input_only", {"sliding_window": True}), ("closed_loop", {"voltage_history": True}),
                       ("spike_head", {"sliding_window": True, "spike_head": True})):
        path = _edited_copy(good, tmp_path / f"{name}.pt",
                            lambda m: _as_written_with_sliding_models(m, horizon=16, **kind))
        with pytest.raises(CheckpointError, match=r"sliding-window models were removed.*network=True.*"
                                                  r"pv_fno_network\.pt.*noble-neuron train --config streaming_cpu"):
            load_surrogate(path)
        with pytest.raises(CheckpointError, match="sliding-window network-mode checkpoint"):
            load_checkpoint(path)  # the raw reader refuses it too (training's init_from, resume)
    # legacy keys that contradict the model they sit in are not silently dropped
    contradicting = [(good, lambda m: (_as_written_with_sliding_models(m), m.update(spike_template_mV=[1.0]))),
                     (legacy_network, lambda m: m["config"].update(voltage_history=True)),
                     (legacy_network, lambda m: m["config"].update(spike_head=False))]
    for i, (src, edit) in enumerate(contradicting):
        with pytest.raises(CheckpointError, match="legacy sliding-window settings .* contradict"):
            load_surrogate(_edited_copy(src, tmp_path / f"contradicting{i}.pt", edit))


def test_fast_fft_length_and_padding():
    from noble_neuron.surrogate.model import decode_voltage, fast_fft_length

    assert fast_fft_length(8583) == 8640 and fast_fft_length(1000) == 1000 and fast_fft_length(7) == 8
    for n in range(1, 400):
        m = fast_fft_length(n)
        assert m >= n and all(fast_fft_length(k) != k for k in range(n, m))
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
    torch.manual_seed(1)
    config = SurrogateConfig(n_layers=1, hidden_channels=4, n_modes=8, pad_to_fast_length=True)
    model = build_fno(config).eval()
    inp = torch.randn(2, config.in_channels, 211)  # 211 is prime → padded to 216
    with torch.inference_mode():
        v = decode_voltage(model, inp, config)
        manual = model(torch.nn.functional.pad(inp, (0, 5)))[:, 0, :211] * config.v_scale_mV + config.v_offset_mV
        unpadded = decode_voltage(model, inp, SurrogateConfig(n_layers=1, hidden_channels=4, n_modes=8))
    assert v.shape == (2, 211)
    torch.testing.assert_close(v, manual)
    assert not torch.allclose(v, unpadded)  # padding is part of the model: it changes the output
    with pytest.raises(ValueError, match="pad_to_fast_length"):
        SurrogateConfig(pad_to_fast_length="yes")
