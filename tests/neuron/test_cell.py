"""SurrogateCell in real NEURON runs, driven by a real (tiny, overfit) FNO that spikes.

The tiny surrogate was trained on 60 ms ball-and-stick traces (1000 samples at 0.06 ms),
so runs here are 60 ms long and take milliseconds.
"""
import gc
import warnings

import numpy as np
import pytest

from noble_neuron.neuron.engine import engine
from noble_neuron.surrogate.checkpoint import load_surrogate
from noble_neuron.neuron.cell import SurrogateCell, SurrogateCellError
from noble_neuron.surrogate.model import DomainWarning

WINDOW_MS = 60.0


@pytest.fixture(scope="module")
def tiny(tiny_trained):
    return load_surrogate(tiny_trained[0], device="cpu")


@pytest.fixture(autouse=True)
def no_leftover_cells(h):
    yield
    gc.collect()
    h.cvode_active(0)
    h.dt = 0.025
    assert engine().cells() == [], "a SurrogateCell outlived its test (it would join every later finitialize)"


def run(h, tstop=WINDOW_MS, dt=0.025, cvode=False):
    h.cvode_active(1 if cvode else 0)
    h.dt = dt
    h.finitialize(-65)
    h.continuerun(tstop)


def step(h, cell, amp, delay=10.0, dur=40.0):
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = delay, dur, amp
    return stim


def crossings(t, v, threshold=0.0):
    """Upward threshold crossing times (ms) of a trace, linearly interpolated."""
    k = np.flatnonzero((v[:-1] < threshold) & (v[1:] >= threshold))
    return t[k] + (threshold - v[k]) * (t[k + 1] - t[k]) / (v[k + 1] - v[k])


@pytest.mark.parametrize("dt,cvode", [(0.025, False), (0.1, False), (0.025, True)])
def test_recorded_trace_equals_predict_and_netcon_sees_its_spikes(h, tiny, dt, cvode):
    cell = SurrogateCell("bs0", checkpoint=tiny)
    stim = step(h, cell, 0.2)
    v = h.Vector().record(cell.soma(0.5)._ref_v)
    t = h.Vector().record(h._ref_t)
    nc = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)
    nc.threshold = 0
    spikes = h.Vector()
    nc.record(spikes)
    run(h, dt=dt, cvode=cvode)

    grid = np.arange(tiny.n_samples) * tiny.dt_ms
    expected_input = np.where((grid >= 10) & (grid < 50), 0.2, 0.0)
    np.testing.assert_allclose(cell.input_nA, expected_input)
    direct = tiny.predict(expected_input, tiny.features_of("bs0"), tiny.dt_ms)
    np.testing.assert_array_equal(cell.prediction_mV, direct)
    tt, vv = t.as_numpy(), v.as_numpy()
    assert tt[-1] == pytest.approx(WINDOW_MS)
    assert np.abs(vv - np.interp(tt, grid, direct)).max() < 0.5  # the bound; measured ~0.001 mV
    assert vv[0] == pytest.approx(direct[0], abs=1e-6)  # t = 0 sample is the prediction, not finitialize's -65

    expected_spikes = crossings(grid, direct)
    assert expected_spikes.size >= 2, "the tiny surrogate should spike at 0.2 nA"
    assert spikes.size() == expected_spikes.size
    # fixed step: NetCon sees v at grid points (≤ 1 dt late); CVode interpolates within its own
    # steps, good to about one surrogate sample (measured 0.036 ms).
    np.testing.assert_allclose(spikes.as_numpy(), expected_spikes, atol=tiny.dt_ms if cvode else dt + 0.01)
    del stim, nc, cell


def test_one_batched_predict_for_100_cells_and_rerun_cache(h, tiny, monkeypatch):
    calls = []
    real_predict = tiny.predict

    def counting_predict(stimuli, *a, **k):
        calls.append(np.shape(stimuli))
        return real_predict(stimuli, *a, **k)

    monkeypatch.setattr(tiny, "predict", counting_predict)
    amps = np.linspace(-0.04, 0.3, 100)
    cells = [SurrogateCell(["bs0", "bs1", "bs2"][i % 3], checkpoint=tiny) for i in range(100)]
    stims = [step(h, c, a) for c, a in zip(cells, amps)]
    before = engine().predict_calls
    run(h)
    assert calls == [(100, tiny.n_samples)] and engine().predict_calls == before + 1
    first = np.stack([c.prediction_mV for c in cells])
    # each row is that cell's own input: compare a few against direct calls
    for i in (0, 37, 99):
        np.testing.assert_allclose(first[i], real_predict(cells[i].input_nA, cells[i].features, tiny.dt_ms), atol=1e-3)  # batched float32 vs single: ~3e-5 mV

    run(h)  # nothing changed: no forward pass
    assert len(calls) == 1
    stims[5].amp = 0.25  # changed after construction and after a run: only that cell is re-predicted
    run(h)
    assert calls[-1] == (1, tiny.n_samples)
    assert not np.array_equal(cells[5].prediction_mV, first[5])
    np.testing.assert_array_equal(cells[6].prediction_mV, first[6])
    del stims, cells


def test_inject_current_waveform(h, tiny):
    cell = SurrogateCell("bs1", checkpoint=tiny)
    ramp_t = np.array([0.0, 10.0, 50.0, 50.01])
    ramp_i = np.array([0.0, 0.0, 0.2, 0.0])
    cell.inject_current(ramp_i, t_ms=ramp_t)
    stim = step(h, cell, 0.05, delay=20, dur=5)  # IClamps and injected waveforms add up
    assert tiny.steps_only
    with pytest.warns(DomainWarning, match="not a single current step.*Long Square steps only"):
        run(h)
    assert cell.domain["waveform_is_step"] is False
    grid = np.arange(tiny.n_samples) * tiny.dt_ms
    expected = np.interp(grid, ramp_t, ramp_i, left=0, right=0) + np.where((grid >= 20) & (grid < 25), 0.05, 0)
    np.testing.assert_allclose(cell.input_nA, expected, atol=1e-12)
    np.testing.assert_array_equal(cell.prediction_mV, tiny.predict(expected, cell.features, tiny.dt_ms))
    cell.clear_injected()
    with pytest.raises(ValueError, match="exactly one of dt_ms or t_ms"):
        cell.inject_current([0, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        cell.inject_current([0, 1, 2], t_ms=[0, 2, 1])
    with pytest.raises(ValueError, match="NaN"):
        cell.inject_current([0, np.nan], dt_ms=0.1)
    cell.inject_current([0.0, 0.1], dt_ms=np.float32(0.06))  # numpy scalars are numbers
    with pytest.raises(ValueError, match="dt_ms must be a number > 0"):
        cell.inject_current([0.0, 0.1], dt_ms=True)
    cell.clear_injected()
    del stim, cell


def test_unsupported_setups_fail_clearly(h, tiny):
    cell = SurrogateCell("bs0", checkpoint=tiny)
    stim = step(h, cell, 0.1)

    syn = h.ExpSyn(cell.soma(0.5))
    with pytest.raises(RuntimeError, match="ExpSyn.*silently ignored"):
        run(h)
    del syn

    cell.soma.insert("hh")
    with pytest.raises(RuntimeError, match=r"mechanisms \['hh'\].*no effect"):
        run(h)
    cell.soma.uninsert("hh")

    played, play_t = h.Vector([0.0, 0.1, 0.2]), h.Vector([0.0, 20.0, 40.0])  # (NEURON drops a play whose tvec dies)
    played.play(stim._ref_amp, play_t, 1)
    with pytest.raises(RuntimeError, match="Vector.play.*inject_current"):
        run(h)
    played.play_remove()
    assert stim.amp == 0.1  # the sentinel never leaks into the user's IClamp

    with pytest.raises(RuntimeError, match="past t = 60.06 ms.*does not tile"):
        run(h, tstop=80.0)

    stim.amp = float("nan")
    with pytest.raises(RuntimeError, match="non-finite delay/dur/amp"):
        run(h)
    stim.amp = 0.1
    run(h)  # recovers after every refusal
    assert cell.prediction_mV is not None
    del stim, played, play_t, cell


def test_domain_guard_warns_once_per_cell_or_raises_in_strict_mode(h, tiny):
    with pytest.warns(DomainWarning, match="outside the convex hull"):
        far = SurrogateCell(features=(0.2, 50.0), checkpoint=tiny)
    assert far.domain["features_in_hull"] is False and far.domain["inside"] is False
    with pytest.raises(SurrogateCellError, match="outside the convex hull.*strict"):
        SurrogateCell(features=(0.2, 50.0), checkpoint=tiny, strict=True)
    del far

    cell = SurrogateCell("bs0", checkpoint=tiny)
    assert cell.domain == {"features_in_hull": True, "amplitude_nA": None, "amplitude_in_range": None,
                           "waveform_is_step": None, "inside": True}
    stim = step(h, cell, 0.5)  # trained range is [-0.05, 0.3] nA
    with pytest.warns(DomainWarning, match=r"amplitude 0.5 nA is outside the trained range"):
        run(h)
    assert cell.domain["amplitude_nA"] == pytest.approx(0.5) and cell.domain["inside"] is False
    stim.amp = 0.45
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(h)  # same cell, same reason: warned once already
    strict = SurrogateCell("bs1", checkpoint=tiny, strict=True)
    stim2 = step(h, strict, 0.5)
    with pytest.raises(RuntimeError, match="outside the trained range.*strict"):
        run(h)
    del stim2, strict, stim, cell

    with pytest.raises(KeyError, match="bs9"):
        SurrogateCell("bs9", checkpoint=tiny)
    with pytest.raises(ValueError, match="model_id or features"):
        SurrogateCell("bs0", features=(0.05, 500.0), checkpoint=tiny)


def test_sample_draws_neurons_inside_the_hull(h, tiny):
    cells = SurrogateCell.sample(8, seed=3, checkpoint=tiny)
    feats = np.stack([c.features for c in cells])
    assert feats.shape == (8, 2) and tiny.in_hull(feats).all()
    again = SurrogateCell.sample(8, seed=3, checkpoint=tiny)
    np.testing.assert_array_equal(feats, np.stack([c.features for c in again]))
    assert len({c.soma.name() for c in cells + again}) == 16
    del cells, again
    # sizes that cannot fit are refused before a single cell is built, naming the memory per cell
    from noble_neuron.neuron.engine import SurrogateCellError

    with pytest.raises(SurrogateCellError, match=r"sample\(1000000000\): .* GiB once run .* MiB per cell"):
        SurrogateCell.sample(10**9, checkpoint=tiny)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=r"sample\(n\), the number of neurons, must be a positive integer"):
            SurrogateCell.sample(bad, checkpoint=tiny)


def test_shipped_checkpoint_default_cell(h):
    from noble_neuron import SurrogateCell as exported
    from noble_neuron.detailed.pv_family import load_family

    assert exported is SurrogateCell
    cell = SurrogateCell()
    s = cell.surrogate
    assert cell.model_id in s.train_model_ids
    assert sorted(s.model_features) == sorted(m.model_id for m in load_family())
    unseen = SurrogateCell("hof_055")
    np.testing.assert_array_equal(unseen.features, s.features_of("hof_055"))
    assert s.model_features["hof_055"]["split"] == "unseen"
    assert hasattr(cell.soma, "L") and cell.soma.name() == f"{cell}.soma"
    del cell, unseen


def test_is_single_step():
    from noble_neuron.neuron.engine import is_single_step

    x = np.zeros(100)
    assert is_single_step(x)
    x[10:50] = 0.2
    assert is_single_step(x)
    x[60:70] = 0.2
    assert not is_single_step(x)  # two pulses
    y = np.zeros(100)
    y[10:50] = np.linspace(0.1, 0.2, 40)
    assert not is_single_step(y)  # a ramp


def test_h_run_and_tstop(h, tiny):
    cell = SurrogateCell("bs2", checkpoint=tiny)
    stim = step(h, cell, 0.15)
    v = h.Vector().record(cell.soma(0.5)._ref_v)
    h.cvode_active(0)
    h.tstop = 30.0  # shorter than the trained window: fine, the prediction is simply cut
    h.run()
    assert h.t == pytest.approx(30.0) and v.size() == int(round(30.0 / h.dt)) + 1
    h.tstop = 80.0
    with pytest.raises(RuntimeError, match="does not tile"):
        h.run()
    h.tstop = WINDOW_MS
    del stim, v, cell
