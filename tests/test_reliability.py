"""Reliability: determinism, NaN containment, and property tests of the embedding.

The bad-input matrix is spread over the module tests (see docs/reliability.md); this file
holds the cross-cutting guarantees.
"""
import gc
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import short_step
from noble_neuron.surrogate.encoding import build_input, frequency_embedding, time_grid


def test_same_inputs_give_bit_identical_dataset_rows(ball_stick_spec, tmp_path):
    from noble_neuron.simulation.datagen import generate
    from noble_neuron.data.dataset import open_dataset

    protocols = [short_step(0.0), short_step(0.2)]
    a = open_dataset(generate([ball_stick_spec], protocols, tmp_path / "a.h5", engine="serial", progress=False))
    b = open_dataset(generate([ball_stick_spec], protocols, tmp_path / "b.h5", engine="serial", progress=False))
    rows = a.rows()
    assert np.array_equal(a.read(rows), b.read(rows))
    assert np.array_equal(a.read(rows, "stimulus_nA"), b.read(rows, "stimulus_nA"))


def test_same_seed_gives_bit_identical_weights_and_outputs(tiny_dataset, tmp_path):
    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.surrogate.model import SurrogateConfig
    from noble_neuron.training.train import TrainConfig, train

    config = SurrogateConfig(n_layers=1, hidden_channels=6, n_modes=16)
    tc = TrainConfig(epochs=2, batch_size=8, seed=11)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(tiny_dataset, config, tc, tmp_path / "a.pt", progress=False, device="cpu")
        train(tiny_dataset, config, tc, tmp_path / "b.pt", progress=False, device="cpu")
    finally:
        torch.set_num_threads(n)
    a, b = load_surrogate(tmp_path / "a.pt", device="cpu"), load_surrogate(tmp_path / "b.pt", device="cpu")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    x = np.zeros((3, a.n_samples))
    x[:, 200:800] = [[0.0], [0.1], [0.2]]
    f = a.features_of("bs0")
    assert np.array_equal(a.predict(x, f, a.dt_ms), b.predict(x, f, b.dt_ms))
    assert np.array_equal(a.predict(x, f, a.dt_ms), a.predict(x, f, a.dt_ms))


def test_nan_from_the_network_never_reaches_neuron(tiny_trained):
    from neuron import h

    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.neuron.cell import SurrogateCell

    h.load_file("stdrun.hoc")
    s = load_surrogate(tiny_trained[0], device="cpu")
    cell = SurrogateCell("bs0", checkpoint=s)
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = 10, 40, 0.1
    h.finitialize(-65)
    good = cell.prediction_mV
    with torch.no_grad():
        next(s.model.parameters()).fill_(math.nan)  # a corrupted network
    stim.amp = 0.12
    with pytest.raises(RuntimeError, match="NaN/inf"):
        h.finitialize(-65)
    assert np.array_equal(cell.prediction_mV, good)  # the previous, finite trace is still what NEURON plays
    assert np.isfinite(cell.clamp_target.as_numpy()).all()
    del stim, cell
    gc.collect()


@settings(max_examples=30, deadline=None)
@given(p=st.floats(0.5, 3.5), n_freqs=st.integers(0, 9), n_ref=st.integers(2, 3000),
       start=st.integers(0, 500), length=st.integers(1, 400))
def test_embedding_properties(p, n_freqs, n_ref, start, length):
    t = time_grid(n_ref, start=start, length=length)
    e = frequency_embedding(torch.tensor([p]), t[None, :], n_freqs)
    assert e.shape == (1, 2 * n_freqs, length) and e.dtype == torch.float32
    if n_freqs:
        sin, cos = e[0, :n_freqs].double(), e[0, n_freqs:].double()
        torch.testing.assert_close(sin**2 + cos**2, torch.ones_like(sin), atol=1e-6, rtol=0)
        k = n_freqs - 1  # frequency k is 2^k · π · p radians per unit of t
        p32 = float(np.float32(p))  # the embedding receives p as float32
        expected = torch.sin((2.0**k) * math.pi * p32 * t)
        torch.testing.assert_close(e[0, k].double(), expected, atol=1e-6, rtol=0)
    # a window sees exactly the full trace's time axis
    full = time_grid(n_ref, start=0, length=start + length)
    assert torch.equal(t, full[start:])


@settings(max_examples=20, deadline=None)
@given(amp=st.floats(-0.1, 0.3), feats=st.tuples(st.floats(0.5, 3.5), st.floats(0.5, 3.5)),
       length=st.integers(2, 600))
def test_build_input_properties(amp, feats, length):
    x = torch.full((2, length), amp, dtype=torch.float32)
    inp = build_input(x, torch.tensor([2.0, 2.0]), torch.tensor([feats, feats]), n_ref=1000, k_amp=9, k_feat=1,
                      current_scale_nA=0.3)
    assert inp.shape == (2, 23, length) and torch.isfinite(inp).all()
    torch.testing.assert_close(inp[:, 0], x / 0.3)
    assert torch.equal(inp[0], inp[1])  # no cross-talk between batch items
