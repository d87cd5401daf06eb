"""Streaming (network-mode) surrogate: causal spectral network, its decoder, training and the NEURON engine."""
import numpy as np
import pytest
import torch

from noble_neuron.surrogate.decoder import StreamComposer
from noble_neuron.surrogate.streaming import CausalSpectralNet, coarse_inputs, coarse_targets
from noble_neuron.surrogate.model import SurrogateConfig


def test_recurrence_is_the_convolution():
    """The engine's step-by-step recurrence computes exactly what training's FFT convolution computes."""
    torch.manual_seed(0)
    net = CausalSpectralNet(4, 16, 3, 8, 32).eval()
    x = torch.randn(2, 300, 4)
    with torch.no_grad():
        whole = net(x)
        state, steps = net.initial_state(2), []
        for k in range(300):
            out, state = net.step(x[:, k], state)
            steps.append(out)
    np.testing.assert_allclose(torch.stack(steps, 1).numpy(), whole.numpy(), atol=2e-5)
    x2 = x.clone()
    x2[:, 200:] += 1.0  # causal: changing the future leaves the past alone
    with torch.no_grad():
        assert torch.equal(net(x2)[:, :200], whole[:, :200]) or torch.allclose(net(x2)[:, :200], whole[:, :200],
                                                                                atol=1e-5)
        assert not torch.allclose(net(x2)[:, 200:], whole[:, 200:], atol=1e-3)


def test_recurrent_modes_are_stable():
    net = CausalSpectralNet(3, 8, 2, 4, 16)
    for layer in net.spectral:
        with torch.no_grad():
            layer.log_tau.fill_(-20.0)  # an absurdly short memory must still be a contraction
        log_lam, _ = layer._poles()
        assert bool((torch.exp(log_lam).abs() < 1.0).all())


def test_coarse_grid_alignment():
    """Model step k covers data samples k*f+1 .. (k+1)*f; its voltage target is the last of them, clipped."""
    v = np.full((1, 16), -70.0)
    v[0, 7] = 10.0  # a spike crossing at data sample 7 -> step 1 (samples 6..10) with f = 5
    v[0, 15] = -60.0
    i = np.arange(16, dtype=float)[None, :]
    np.testing.assert_allclose(coarse_inputs(i, 5), [[3.0, 8.0, 13.0]])
    v_c, spk = coarse_targets(v, 5, -55.0)
    np.testing.assert_allclose(v_c, [[-70.0, -70.0, -60.0]])
    np.testing.assert_array_equal(spk, [[0, 1, 0]])


def test_stream_composer_places_crossing_at_step_centre_across_chunks():
    tmpl = np.array([[-45.0, -35.0, 20.0, 0.0, -30.0, -50.0, -60.0, -70.0]])  # pre = 2: crossing at index 2
    comp = StreamComposer(tmpl, pre_samples=2, factor=5)
    flat = np.full((1, 5), -60.0)
    a = comp.paste(flat, np.array([[True]]))
    b = comp.paste(flat, np.array([[False]]))
    v = np.concatenate([a, b], axis=1)[0]
    # crossing at the step's 3rd sample (offset 3 of 1..5 -> index 2), the template's rising phase before it
    np.testing.assert_allclose(v[:5], [-45.0, -35.0, 20.0, 0.0, -30.0])
    np.testing.assert_allclose(v[5:8], [-50.0, -60.0, -60.0])  # max(template, clipped voltage) continues
    assert v[2] > -20 > v[1]


def test_streaming_config_rules():
    c = SurrogateConfig(streaming=True, time_coarsening=5)
    assert c.in_channels == 2 + len(c.feature_names) and not c.is_event_model
    with pytest.raises(ValueError, match="event_output is for whole-trace models"):
        SurrogateConfig(streaming=True, event_output="phase")
    with pytest.raises(ValueError, match="grid_channel .* not for streaming models"):
        SurrogateConfig(streaming=True, grid_channel=True)
    with pytest.raises(ValueError, match="unknown SurrogateConfig key"):  # the removed sliding-window options
        SurrogateConfig.from_dict({"streaming": True, "voltage_history": True})


@pytest.fixture(scope="module")
def streaming_ckpt(tiny_streaming):
    return tiny_streaming


def test_training_writes_a_streaming_checkpoint(streaming_ckpt):
    from noble_neuron.surrogate.checkpoint import load_surrogate

    path, metrics = streaming_ckpt
    assert metrics["epochs_done"] == 2 and np.isfinite(metrics["val_v_mse"])
    assert "closed_loop_count_rel_error" in metrics  # the engine-exact rollout was scored
    s = load_surrogate(path, device="cpu")
    assert s.spike_logit_shift == pytest.approx(np.log(10.0))  # undoes training's positive weight (default 10)
    assert s.config.streaming and s.is_streaming and s.spike_refractory_samples >= 1
    assert not {"sliding_horizon_samples", "spike_template_mV"} & set(s.metadata())
    assert set(s.ap_templates_mV) <= set(s.train_model_ids) and s.ap_templates_mV
    with pytest.raises(ValueError, match="rollout"):
        s.predict(np.zeros((1, 100)), s.features_of("bs0"), s.dt_ms)


def _run_cells(h, s, amps, tstop=50.0, delay=None):
    from noble_neuron import SurrogateCell

    cells = [SurrogateCell("bs0", checkpoint=s, network=True) for _ in amps]
    keep = []
    for c, a in zip(cells, amps):
        st = h.IClamp(c.soma(0.5))
        st.delay, st.dur, st.amp = 5.0, 40.0, a
        keep.append(st)
    if delay is not None:
        syn = h.ExpSyn(cells[0].soma(0.5))
        src = h.NetStim()
        nc = h.NetCon(src, syn)
        nc.delay = delay
        keep += [syn, src, nc]
    recs = [h.Vector().record(c.soma(0.5)._ref_v) for c in cells]
    t = h.Vector().record(h._ref_t)
    h.dt = 0.025
    h.finitialize(-65.0)
    h.continuerun(tstop)
    return cells, recs, t, keep


def test_engine_runs_the_offline_rollout_exactly(h, streaming_ckpt):
    from noble_neuron.neuron.engine import engine
    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.training.rollout import streaming_rollout
    from noble_neuron.surrogate.streaming import cell_key
    from noble_neuron.neuron.network import NetworkGroup

    s = load_surrogate(streaming_ckpt[0], device="cpu")
    amps = [0.05, 0.2]
    cells, recs, t, keep = _run_cells(h, s, amps)
    g = engine().network_group_of(cells[0])
    assert isinstance(g, NetworkGroup) and g.epoch_ms == pytest.approx(0.3 * (g.n_e // 5))
    trace = g.closed_loop_traces()
    grid = np.arange(trace.shape[1]) * s.dt_ms
    x = np.stack([np.where((grid >= 5.0 - 1e-9) & (grid < 45.0 - 1e-9), a, 0.0) for a in amps])
    keys = np.array([cell_key(c.soma.name()) for c in cells], dtype=np.uint64)  # the engine's spike draws
    v_off, spikes = streaming_rollout(s, x, np.stack([c.features for c in cells]), v_rest_mV=trace[:, 0], keys=keys)
    np.testing.assert_allclose(trace, v_off, atol=1e-4)
    assert [len(a) for a in g.spike_times_ms()] == [len(a) for a in spikes]
    for rec, row, st in zip(recs, trace, spikes):  # NEURON's soma follows the surrogate (clamp)
        v = np.interp(grid, t.as_numpy(), rec.as_numpy())
        # away from APs, whose fast edges 0.025 and 0.06 ms sampling cut differently, and before tstop
        calm = (grid <= 50.0) & np.all(np.abs(grid[:, None] - st[None, :]) > 1.5, axis=1) if st.size else grid <= 50.0
        assert np.abs(v[5:][calm[5:]] - row[5:][calm[5:]]).max() < 0.5
        crossings = np.flatnonzero((v[:-1] < -20.0) & (v[1:] >= -20.0))
        assert crossings.size == st.size
    # a second run starts again from the zero state: the same trace
    h.finitialize(-65.0)
    h.continuerun(50.0)
    np.testing.assert_allclose(engine().network_group_of(cells[0]).closed_loop_traces(), trace, atol=1e-5)
    del cells, keep


def test_delay_shorter_than_two_model_steps_is_refused(h, streaming_ckpt):
    from noble_neuron.surrogate.checkpoint import load_surrogate

    s = load_surrogate(streaming_ckpt[0], device="cpu")
    with pytest.raises(RuntimeError, match="one streaming-model step.*0.5 ms here.*must exceed"):
        _run_cells(h, s, [0.1], tstop=5.0, delay=0.5)


def test_spike_draws_are_a_fixed_function_of_cell_and_step():
    from noble_neuron.surrogate.streaming import cell_key, hashed_uniform

    keys = np.array([cell_key("cell_3.soma"), cell_key("cell_4.soma")], dtype=np.uint64)
    a = hashed_uniform(keys, 7)
    np.testing.assert_array_equal(a, hashed_uniform(keys, 7))  # repeatable
    assert hashed_uniform(keys[1:], 7)[0] == a[1]  # independent of the batch a cell is in
    u = hashed_uniform(np.arange(20000, dtype=np.uint64), 3)
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01 and abs(u.std() - 12 ** -0.5) < 0.01
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.03


def test_a_certain_spike_fires_and_an_impossible_one_does_not(streaming_ckpt):
    """Draws follow the hazard: logit shifted far up fires every allowed step, far down never."""
    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.training.rollout import streaming_rollout

    s = load_surrogate(streaming_ckpt[0], device="cpu")
    x = np.zeros((1, 601))
    s.spike_logit_shift = -1e3
    _, always = streaming_rollout(s, x, s.features_of("bs0"), -65.0)
    s.spike_logit_shift = 1e3
    _, never = streaming_rollout(s, x, s.features_of("bs0"), -65.0)
    refr = max(1, int((s.spike_refractory_samples or 1) // 5))
    assert never[0].size == 0
    import noble_neuron.surrogate.streaming as streaming

    floor, streaming.HAZARD_FLOOR = streaming.HAZARD_FLOOR, 1.5  # hazards below the floor never fire
    try:
        s.spike_logit_shift = -1e3
        assert streaming_rollout(s, x, s.features_of("bs0"), -65.0)[1][0].size == 0
    finally:
        streaming.HAZARD_FLOOR = floor
    assert always[0].size == int(np.ceil(120 / refr))  # 120 steps of 0.3 ms, one spike per refractory period


def test_small_batches_step_on_one_thread_and_the_setting_is_restored(streaming_ckpt, monkeypatch):
    """The same voltages on one thread as on two, and the process's torch thread count is left as it was."""
    import noble_neuron.surrogate.streaming as streaming
    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.surrogate.streaming import StreamingRunner, step_threads

    assert step_threads(1) == 1 and 1 <= step_threads(streaming.ONE_THREAD_BELOW_CELLS) <= torch.get_num_threads()
    s = load_surrogate(streaming_ckpt[0], device="cpu")
    feats = np.stack([s.features_of("bs0")] * 3)
    current = np.tile(np.linspace(0.0, 0.3, 300), (3, 1))
    before = torch.get_num_threads()
    one = StreamingRunner(s, feats, -65.0).advance(current)
    assert torch.get_num_threads() == before
    monkeypatch.setattr(streaming, "ONE_THREAD_BELOW_CELLS", 0)  # every batch on the process's threads
    np.testing.assert_allclose(StreamingRunner(s, feats, -65.0).advance(current), one, atol=1e-3)


def test_sparse_traces_are_repeated_in_every_epoch(tiny_dataset, tmp_path):
    """`sparse_oversample`: traces whose detailed cell fires below SPARSE_RATE_HZ appear k times per epoch."""
    import numpy as np

    from noble_neuron.data.dataset import open_dataset
    from noble_neuron.features.spikes import spike_times
    from noble_neuron.training.streaming import SPARSE_RATE_HZ
    from noble_neuron.training.train import TrainConfig, train

    with pytest.raises(ValueError, match="sparse_oversample must be an integer >= 1"):
        TrainConfig(sparse_oversample=0)
    ds = open_dataset(tiny_dataset)
    v = ds.read(ds.rows())
    rates = np.array([spike_times(x, ds.dt_ms).size for x in v]) / (v.shape[1] * ds.dt_ms / 1000.0)
    assert ((rates > 0) & (rates < SPARSE_RATE_HZ)).any()  # the tiny dataset has sparse traces
    sc = SurrogateConfig(streaming=True, n_layers=1, hidden_channels=8, state_modes=2, time_coarsening=5,
                         ap_pre_ms=0.12, current_scale_nA=0.1, v_scale_mV=10.0)
    items = []
    for k in (1, 3):
        m = train(tiny_dataset, sc, TrainConfig(epochs=1, batch_size=8, val_every_kth_amplitude=4, sparse_oversample=k),
                  tmp_path / f"s{k}.pt", progress=False, device="cpu")
        items.append(m["train_items_per_epoch"])
        assert m["n_train_traces"] == items[0]
    assert items[1] > items[0]


def test_state_carries_across_epochs_of_any_length_identically(streaming_ckpt):
    """The runner's state (recurrence, last spike, AP still to paste, spike draws) does not depend on how a run is cut
    into epochs: chunks of 1, 3, 2, 7, ... model steps give the trace of one long advance (to 1e-3 mV)."""
    import numpy as np

    from noble_neuron.surrogate.checkpoint import load_surrogate
    from noble_neuron.surrogate.streaming import StreamingRunner

    s = load_surrogate(streaming_ckpt[0], device="cpu")
    f = s.config.time_coarsening
    n_steps = 60
    rng = np.random.default_rng(0)
    current = np.repeat(rng.uniform(0.0, 0.4, size=(3, n_steps)), f, axis=1)  # 3 cells, 60 model steps
    feats = np.stack([s.features_of(m) for m in list(s.model_features)[:3]])
    one = StreamingRunner(s, feats, np.full(3, -70.0))
    whole = one.advance(current)
    cut = StreamingRunner(s, feats, np.full(3, -70.0))
    pieces, k = [], 0
    for n in [1, 3, 2, 7, 1, 11, 5, 30]:
        pieces.append(cut.advance(current[:, k * f:(k + n) * f]))
        k += n
    assert k == n_steps
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-3)
    assert cut.spike_steps == one.spike_steps and any(cut.spike_steps)  # spikes fired, at the same steps
