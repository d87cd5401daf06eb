"""NeRF frequency embedding and FNO input: shapes, frequencies, window consistency, amplitudes."""
import math

import numpy as np
import pytest
import torch

from noble_neuron.surrogate.encoding import (build_input, characteristic_amplitude, frequency_embedding, minmax_scale,
                                    n_input_channels, time_grid)


def _inputs(b=3, length=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    stim = torch.zeros(b, length)
    stim[:, 50:400] = torch.linspace(-0.1, 0.4, b)[:, None]
    return stim, 0.5 + 3 * torch.rand(b, generator=g), 0.5 + 3 * torch.rand(b, 2, generator=g)


def test_default_shape_is_23_channels():
    stim, amp, feat = _inputs()
    x = build_input(stim, amp, feat, n_ref=500)
    assert n_input_channels(9, 1, 2) == 23
    assert x.shape == (3, 23, 500) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0], stim / 0.3)


def test_time_grid_is_linspace_0_2pi():
    np.testing.assert_allclose(time_grid(777).numpy(), np.linspace(0, 2 * np.pi, 777), rtol=0, atol=1e-12)


def test_channels_are_sin_then_cos_of_scaled_frequencies():
    stim, amp, feat = _inputs(length=800)
    x = build_input(stim, amp, feat, n_ref=800).double().numpy()
    t = np.linspace(0, 2 * np.pi, 800)
    p = amp.double().numpy()[:, None]
    for k in range(9):
        np.testing.assert_allclose(x[:, 1 + k], np.sin(2.0**k * np.pi * p * t), atol=2e-6)
        np.testing.assert_allclose(x[:, 1 + 9 + k], np.cos(2.0**k * np.pi * p * t), atol=2e-6)
    f = feat.double().numpy()
    for j in range(2):  # per feature: sin, cos (K_feat = 1)
        np.testing.assert_allclose(x[:, 19 + 2 * j], np.sin(np.pi * f[:, j:j + 1] * t), atol=2e-6)
        np.testing.assert_allclose(x[:, 20 + 2 * j], np.cos(np.pi * f[:, j:j + 1] * t), atol=2e-6)


def test_more_feature_frequencies_follow_documented_order():
    p = torch.tensor([1.3, 2.2])
    t = time_grid(100)
    e = frequency_embedding(p, t, 3).double()
    for k in range(3):
        ref = np.sin(2.0**k * np.pi * p.double().numpy()[:, None] * t.numpy())
        np.testing.assert_allclose(e[:, k].numpy(), ref, atol=1e-6)
    stim, amp, _ = _inputs(b=2, length=100)
    feat = torch.tensor([[0.7, 3.1], [1.5, 2.5]])
    x = build_input(stim, amp, feat, n_ref=100, k_amp=2, k_feat=3)
    assert x.shape == (2, 1 + 4 + 12, 100)
    torch.testing.assert_close(x[:, 5:11], frequency_embedding(feat[:, 0], t, 3))
    torch.testing.assert_close(x[:, 11:17], frequency_embedding(feat[:, 1], t, 3))


@pytest.mark.parametrize("start", [0, 17, 300])
def test_window_uses_full_trace_time_values(start):
    stim, amp, feat = _inputs(length=1000)
    full = build_input(stim, amp, feat, n_ref=1000)
    w = 256
    win = build_input(stim[:, start:start + w], amp, feat, n_ref=1000, start=start)
    assert torch.equal(win, full[:, :, start:start + w])
    assert torch.equal(time_grid(1000, start=start, length=w), time_grid(1000)[start:start + w])


def test_per_item_window_offsets():
    stim, amp, feat = _inputs(b=3, length=1000)
    full = build_input(stim, amp, feat, n_ref=1000)
    offs = torch.tensor([0, 123, 744])
    w = 256
    cols = offs[:, None] + torch.arange(w)[None, :]
    win = build_input(torch.gather(stim, 1, cols), amp, feat, n_ref=1000, start=offs)
    for i, s in enumerate(offs.tolist()):
        assert torch.equal(win[i], full[i, :, s:s + w])


def test_characteristic_amplitude_of_steps_and_zeros():
    stim = torch.zeros(4, 1000)
    stim[0, 100:800] = 0.25
    stim[1, 100:800] = -0.07
    stim[3, 10:20] = 1.0
    stim[3, 20:40] = 0.5  # mean over the on-window: (10·1 + 20·0.5) / 30
    amp = characteristic_amplitude(stim)
    torch.testing.assert_close(amp, torch.tensor([0.25, -0.07, 0.0, 20 / 30]))
    assert characteristic_amplitude(torch.zeros(1000)).item() == 0.0
    assert characteristic_amplitude(np.full(50, 0.1, dtype=np.float32)).item() == pytest.approx(0.1)


def test_minmax_scale_maps_training_range():
    x = torch.tensor([-0.1, 0.15, 0.4, 0.65], dtype=torch.float64)
    torch.testing.assert_close(minmax_scale(x, -0.1, 0.4), torch.tensor([0.5, 2.0, 3.5, 5.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="data_max must exceed"):
        minmax_scale(x, 1.0, 1.0)


def test_bad_inputs_are_rejected():
    stim, amp, feat = _inputs()
    with pytest.raises(ValueError, match="amp_scaled"):
        build_input(stim, amp[:2], feat, n_ref=500)
    with pytest.raises(ValueError, match="stimuli_nA"):
        build_input(stim[0], amp, feat, n_ref=500)
    with pytest.raises(ValueError, match="n_ref"):
        time_grid(1)
    with pytest.raises(ValueError, match="length is required"):
        time_grid(100, start=torch.tensor([1, 2]))
    assert math.isclose(time_grid(3)[-1].item(), 2 * math.pi)
