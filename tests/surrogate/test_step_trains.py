"""A model's own spike trains under steps, read between its training amplitudes (numpy, milliseconds)."""
import numpy as np
import pytest

from types import SimpleNamespace

from noble_neuron.surrogate.event_model import own_step_train, with_learned_after_step
from noble_neuron.surrogate.step_trains import StepTrains, fit_step_trains, single_step

DUR_MS = 400.0


def _tonic(amp_nA: float, latency_ms: float = 5.0) -> np.ndarray:
    """A tonic train whose interval shrinks with the current (ms from onset), as a type-I cell's would."""
    isi = 1e3 / (200.0 * amp_nA)  # 200 Hz/nA
    t = latency_ms / amp_nA * 0.1 + isi * np.arange(400)
    return t[t < DUR_MS]


def _table(amps) -> StepTrains:
    trains = [_tonic(a) for a in amps]
    return StepTrains(DUR_MS, np.asarray(amps), np.array([t.size for t in trains]), np.concatenate(trains))


def test_training_amplitudes_give_their_own_trains_and_between_them_the_smooth_train():
    amps = np.linspace(0.1, 0.4, 31)  # 10 pA apart, as dense as a model's training draws
    table = _table(amps)
    for a in amps:
        assert np.allclose(table.train(a, DUR_MS), _tonic(a), atol=1e-9)
    for a in (0.105, 0.2333, 0.377):
        true, pred = _tonic(a), table.train(a, DUR_MS)
        assert abs(pred.size - true.size) <= 1
        n = min(pred.size, true.size)
        assert np.abs(pred[:n] - true[:n]).max() < 1.0, a  # ms, up to the last spike 0.4 s in
        # a shorter step: the same train, cut where its current ends
        assert np.array_equal(table.train(a, 100.0), pred[pred < 100.0])


def test_below_rheobase_no_spikes_and_outside_the_training_steps_refused():
    trains = [np.zeros(0), np.zeros(0), np.array([150.0]), np.array([60.0, 300.0])]
    table = StepTrains(DUR_MS, np.array([0.0, 0.05, 0.1, 0.15]), np.array([0, 0, 1, 2]), np.concatenate(trains))
    assert table.train(0.03, DUR_MS).size == 0
    # the rheobase lies between the last silent (0.05) and the first firing amplitude (0.1): at their midpoint
    assert table.train(0.074, DUR_MS).size == 0 and table.train(0.076, DUR_MS).size == 1
    assert table.train(0.15, DUR_MS).size == 2
    assert not table.covers(0.2, DUR_MS) and not table.covers(0.1, 500.0)
    with pytest.raises(ValueError, match="outside the training steps"):
        table.train(0.2, DUR_MS)


def test_fit_reads_single_steps_of_the_common_duration_and_round_trips_through_json():
    dt, n = 0.1, 5000
    stim, spikes = [], []
    for a in (0.1, 0.2, 0.3):
        x = np.zeros(n)
        x[150:150 + 4000] = a
        stim.append(x)
        spikes.append(15.0 + _tonic(a))
    ramp = np.zeros(n)
    ramp[150:4150] = np.linspace(0.0, 0.3, 4000)  # not a step: left out
    stim.append(ramp)
    spikes.append(np.array([300.0]))
    table = fit_step_trains(np.array(stim), spikes, dt)
    assert table.dur_ms == pytest.approx(400.0) and np.allclose(table.amps_nA, [0.1, 0.2, 0.3])
    assert np.allclose(table.train(0.2, 400.0), _tonic(0.2), atol=1e-9)
    again = StepTrains.from_json(table.to_json())
    assert np.allclose(again.train(0.25, 400.0), table.train(0.25, 400.0), atol=1e-3)
    assert fit_step_trains(np.array(stim[:1] + [ramp]), spikes[:1] + [spikes[-1]], dt) is None  # one amplitude
    bad = table.to_json() | {"counts": [1, 2, 3]}
    with pytest.raises(ValueError, match="refit them with `noble-neuron fit-backbone`"):
        StepTrains.from_json(bad)


def test_single_step_detection():
    x = np.zeros(100)
    assert single_step(x, 0.1) is None
    x[10:60] = -0.05
    assert single_step(x, 0.1) == pytest.approx((-0.05, 1.0, 5.0))
    x[30] = 0.0  # two pulses
    assert single_step(x, 0.1) is None
    y = np.zeros(100)
    y[10:60] = np.linspace(0.1, 0.2, 50)
    assert single_step(y, 0.1) is None


def test_a_training_models_step_uses_its_own_train_and_keeps_the_learned_spikes_after_it():
    table = _table(np.linspace(0.1, 0.4, 7))
    backbone = SimpleNamespace(trains=table, fires_after_step=lambda amp: amp > 0.3)
    dt = 0.1
    stim = np.zeros(6000)
    stim[150:4150] = 0.2
    own, end, wants_network = own_step_train(backbone, stim, dt)
    assert np.allclose(own, 15.0 + table.train(0.2, 400.0)) and end == pytest.approx(415.0) and not wants_network
    stim[150:4150] = 0.35  # its own steps fired long after the current ended: the network's spikes there are kept
    own, end, wants_network = own_step_train(backbone, stim, dt)
    assert wants_network
    learned = np.array([20.0, 30.0, 420.0, 430.0, 480.0])  # in-step spikes are the train's; 15 ms after the step on
    out = with_learned_after_step(own, end, learned)
    assert np.allclose(out[:-2], own) and np.array_equal(out[-2:], [430.0, 480.0])
    ramp = stim.copy()
    ramp[150:4150] = np.linspace(0.1, 0.3, 4000)
    assert own_step_train(backbone, ramp, dt) is None  # not a step: the network's spikes
    assert own_step_train(SimpleNamespace(trains=None), stim, dt) is None


def test_a_neuron_given_by_features_fires_its_neighbours_trains_at_the_same_distance_from_rheobase():
    from noble_neuron.surrogate.event_model import neighbour_step_train
    from noble_neuron.surrogate.step_trains import blend_trains

    a, b = np.array([10.0, 30.0, 50.0]), np.array([20.0, 40.0])
    assert np.allclose(blend_trains([a, a], np.array([0.5, 0.5])), a)  # the same train twice: itself
    mixed = blend_trains([a, b], np.array([0.5, 0.5]))
    assert mixed.size == 2 and 10.0 < mixed[0] < 20.0 and np.all(np.diff(mixed) > 0)
    assert blend_trains([np.zeros(0), np.zeros(0)], np.array([0.5, 0.5])).size == 0
    # two neighbours with rheobases 0.1 and 0.2 nA; a neuron with rheobase 0.15 nA at 0.25 nA (0.1 above it)
    lower = SimpleNamespace(trains=_table(np.linspace(0.1, 0.4, 31)), fires_after_step=lambda amp: False)
    upper = SimpleNamespace(trains=_table(np.linspace(0.1, 0.4, 31)), fires_after_step=lambda amp: False)
    stim = np.zeros(6000)
    stim[150:4150] = 0.25
    spikes, end, wants_network = neighbour_step_train([lower, upper], np.array([1.0, 0.0]), 0.15, [0.1, 0.2], stim,
                                                      0.1)
    assert np.allclose(spikes, 15.0 + lower.trains.train(0.2, 400.0)) and not wants_network  # 0.1 above rheobase
    spikes, *_ = neighbour_step_train([lower, upper], np.array([0.0, 1.0]), 0.15, [0.1, 0.2], stim, 0.1)
    assert np.allclose(spikes, 15.0 + upper.trains.train(0.3, 400.0))
    assert neighbour_step_train([lower, SimpleNamespace(trains=None)], np.array([0.5, 0.5]), 0.15, [0.1, 0.2], stim,
                                0.1) is None
