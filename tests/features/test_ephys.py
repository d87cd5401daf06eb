"""Tests for noble_neuron.features.ephys on synthetic traces with known answers."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from noble_neuron.features.scaler import FeatureScaler
from noble_neuron.features.ephys import (
    EFEL_FEATURES,
    FICurve,
    count_spikes,
    efel_features,
    fi_curve,
    rate_at,
    input_resistance_MOhm,
    model_features,
    spike_times,
    threshold_current,
    threshold_slope,
)

DT = 0.06
N = 8583
T = np.arange(N) * DT
V_REST = -65.0
STIM_START, STIM_DUR = 15.0, 400.0
STIM_END = STIM_START + STIM_DUR


def rc_step(amp_nA: float, r_MOhm: float = 100.0, tau_ms: float = 20.0) -> np.ndarray:
    """Passive RC membrane response to a Long Square step (exact, analytic)."""
    v = np.full(N, V_REST)
    on = (T >= STIM_START) & (T < STIM_END)
    dv_inf = amp_nA * r_MOhm
    v[on] += dv_inf * (1 - np.exp(-(T[on] - STIM_START) / tau_ms))
    off = T >= STIM_END
    dv_end = dv_inf * (1 - np.exp(-STIM_DUR / tau_ms))
    v[off] += dv_end * np.exp(-(T[off] - STIM_END) / tau_ms)
    return v


def add_spikes(v: np.ndarray, times_ms, peak_mV: float = 30.0, width_ms: float = 0.3) -> np.ndarray:
    """Add narrow Gaussian spikes that peak at ``peak_mV`` at the given times."""
    v = v.copy()
    for t0 in times_ms:
        near = np.abs(T - t0) < 8 * width_ms
        bump = np.exp(-0.5 * ((T[near] - t0) / width_ms) ** 2)
        v[near] += (peak_mV - v[near]) * bump
    return v


def expected_crossing(t0: float, threshold: float = -20.0, peak: float = 30.0, base: float = V_REST,
                      width: float = 0.3) -> float:
    # base + (peak-base)*g = threshold  ->  g = (thr-base)/(peak-base)
    g = (threshold - base) / (peak - base)
    return t0 - width * math.sqrt(-2 * math.log(g))


# ----------------------------------------------------------------------------- spikes
def test_spike_times_match_known_spikes():
    times = [30.0, 77.7, 150.0, 260.3, 400.0]
    v = add_spikes(np.full(N, V_REST), times)
    t = spike_times(v, DT)
    assert t.size == len(times)
    expected = np.array([expected_crossing(x) for x in times])
    np.testing.assert_allclose(t, expected, atol=DT)
    assert count_spikes(v, DT) == len(times)
    assert count_spikes(v, DT, window_ms=(STIM_START, 100.0)) == 2


def test_subthreshold_and_start_above_threshold_give_no_spikes():
    v = np.full(N, V_REST)
    v[(T > 15) & (T < 415)] = -30.0
    assert count_spikes(v, DT) == 0
    assert spike_times(np.full(100, 0.0), DT).size == 0  # starts (and stays) above threshold


def test_noise_near_threshold_is_not_double_counted():
    rng = np.random.default_rng(0)
    v = np.full(N, V_REST)
    plateau = (T > 100) & (T < 120)
    v[plateau] = -20.0 + rng.normal(0, 0.5, plateau.sum())  # chatters around threshold
    assert count_spikes(v, DT) == 1
    # ...but a genuine repolarisation below threshold - hysteresis re-arms detection
    v2 = add_spikes(np.full(N, V_REST), [50.0, 52.0], width_ms=0.2)
    assert count_spikes(v2, DT) == 2


def test_spike_input_validation():
    with pytest.raises(ValueError, match="dt_ms"):
        spike_times(np.zeros(10), 0.0)
    with pytest.raises(ValueError, match="1-D"):
        spike_times(np.zeros((2, 10)), DT)
    with pytest.raises(ValueError, match="NaN"):
        spike_times(np.array([0.0, np.nan, 1.0]), DT)


# ----------------------------------------------------------------------------- FI / thresholds
def known_rate(i_nA: float) -> float:
    return 0.0 if i_nA < 0.1 - 1e-12 else 40.0 + 500.0 * (i_nA - 0.1)


GRID = np.round(np.arange(-0.1, 0.41, 0.05), 10)


def test_threshold_and_slope_on_known_fi_curve():
    fi = FICurve(GRID, np.array([known_rate(a) for a in GRID]))
    i_thr = threshold_current(fi)
    assert i_thr == pytest.approx(0.1)
    assert threshold_slope(fi) == pytest.approx(500.0, abs=1e-6)
    assert threshold_slope(fi, i_thr, n_points=2) == pytest.approx(500.0, abs=1e-6)
    # a threshold that is not on the grid is bounded by the next grid point
    fi2 = FICurve(GRID, np.array([0.0 if a < 0.12 else 10.0 + 200 * a for a in GRID]))
    assert threshold_current(fi2) == pytest.approx(0.15)
    assert threshold_slope(fi2) == pytest.approx(200.0, abs=1e-6)


def test_fi_curve_from_traces_reproduces_known_curve():
    amps, traces = [], []
    for a in GRID:
        n_spk = int(round(known_rate(a) * STIM_DUR / 1000.0))
        times = np.linspace(STIM_START + 5, STIM_END - 5, n_spk) if n_spk else []
        amps.append(a)
        traces.append(add_spikes(rc_step(a if a < 0 else 0.0), times))
    # a rebound spike after a hyperpolarising step must not count as firing
    traces[0] = add_spikes(traces[0], [430.0])
    fi = fi_curve(amps, np.stack(traces), DT)
    expected = np.array([round(known_rate(a) * 0.4) / 0.4 for a in GRID])
    np.testing.assert_allclose(fi.rates_Hz, expected)
    assert threshold_current(fi) == pytest.approx(0.1)
    assert threshold_slope(fi) == pytest.approx(500.0, abs=1e-6)


def test_fi_curve_averages_repeats_and_sorts():
    v0 = np.full(N, V_REST)
    v2 = add_spikes(v0, [100.0, 200.0])
    v4 = add_spikes(v0, [100.0, 150.0, 200.0, 250.0])
    fi = fi_curve([0.3, 0.1, 0.3], [v4, v0, v2], DT)
    np.testing.assert_allclose(fi.amps_nA, [0.1, 0.3])
    np.testing.assert_allclose(fi.rates_Hz, [0.0, 3 / 0.4])


def test_fi_validation_and_never_fires():
    with pytest.raises(ValueError, match="duplicates"):
        FICurve(np.array([0.1, 0.1]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="same length"):
        FICurve(np.array([0.1, 0.2]), np.array([0.0]))
    with pytest.raises(ValueError, match="finite"):
        FICurve(np.array([0.1, np.nan]), np.array([0.0, 1.0]))
    silent = FICurve(GRID, np.zeros_like(GRID))
    with pytest.raises(ValueError, match="never fires"):
        threshold_current(silent)
    one = FICurve(GRID, np.where(GRID >= 0.4 - 1e-9, 5.0, 0.0))
    with pytest.raises(ValueError, match=">= 2"):
        threshold_slope(one)
    with pytest.raises(ValueError, match="traces"):
        fi_curve([0.1, 0.2], [np.full(N, V_REST)], DT)


# ----------------------------------------------------------------------------- scaler
def test_feature_scaler_fit_transform_roundtrip():
    x = np.array([[0.1, 20.0], [0.3, 100.0], [0.2, 60.0]])
    sc = FeatureScaler.fit(x, ["I_thr_nA", "s_thr_Hz_per_nA"])
    y = sc.transform(x)
    np.testing.assert_allclose(y.min(axis=0), [0.5, 0.5])
    np.testing.assert_allclose(y.max(axis=0), [3.5, 3.5])
    np.testing.assert_allclose(y[2], [2.0, 2.0])
    np.testing.assert_allclose(sc.inverse_transform(y), x)
    d = sc.to_dict()
    sc2 = FeatureScaler.from_dict(json.loads(json.dumps(d)))
    assert sc2 == sc
    np.testing.assert_allclose(sc2.transform(x), y)
    np.testing.assert_array_equal(
        sc.outside_range(np.array([[0.05, 60.0], [0.2, 60.0]])), [[True, False], [False, False]]
    )


def test_feature_scaler_rejects_bad_input():
    with pytest.raises(ValueError, match="zero"):
        FeatureScaler.fit(np.array([[1.0, 2.0], [1.0, 3.0]]), ["a", "b"])
    with pytest.raises(ValueError, match="names"):
        FeatureScaler.fit(np.ones((3, 2)) * [[1], [2], [3]], ["a"])
    sc = FeatureScaler.fit(np.array([[0.0], [1.0]]), ["a"])
    with pytest.raises(ValueError, match="last dimension"):
        sc.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="missing"):
        FeatureScaler.from_dict({"names": ["a"]})


# ----------------------------------------------------------------------------- eFEL
def test_efel_subthreshold_rc_trace_matches_analytic():
    amp, r = -0.1, 100.0
    v = rc_step(amp, r_MOhm=r)
    f = efel_features(v, DT, STIM_START, STIM_END, amp_nA=amp)
    assert set(f) == set(EFEL_FEATURES)
    assert all(isinstance(x, float) for x in f.values())
    assert f["voltage_base"] == pytest.approx(V_REST, abs=1e-6)
    assert f["steady_state_voltage_stimend"] == pytest.approx(V_REST + amp * r, abs=1e-3)
    assert f["ohmic_input_resistance_vb_ssse"] == pytest.approx(r, rel=1e-4)
    assert f["spike_count"] == 0.0
    assert math.isnan(f["ISI_CV"]) and math.isnan(f["AP1_width"])
    assert input_resistance_MOhm(v, DT, amp) == pytest.approx(r, rel=1e-4)


def test_efel_spiking_trace_and_settings_restored():
    import efel

    before = efel.get_settings().Threshold
    times = [50.0, 100.0, 160.0, 230.0, 310.0]
    v = add_spikes(rc_step(0.1), times)
    f = efel_features(v, DT, amp_nA=0.1)
    assert f["spike_count"] == len(times)
    assert f["time_to_first_spike"] == pytest.approx(50.0 - STIM_START, abs=0.2)
    assert f["mean_AP_amplitude"] > 50.0
    assert 0.2 < f["AP1_width"] < 1.5
    isi = np.diff(times)
    # eFEL ignores the first ISI by default and uses the sample standard deviation
    assert f["ISI_CV"] == pytest.approx(np.std(isi[1:], ddof=1) / np.mean(isi[1:]), rel=1e-3)
    assert f["mean_frequency"] == pytest.approx(len(times) / (times[-1] - STIM_START) * 1000.0, rel=1e-3)
    assert efel.get_settings().Threshold == before
    with pytest.raises(ValueError, match="unknown eFEL"):
        efel_features(v, DT, names=["not_a_feature"])


def test_model_features_end_to_end():
    amps = np.array([-0.2, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25])
    traces = []
    for a in amps:
        n_spk = int(round(known_rate(a) * 0.4))
        times = np.linspace(40.0, 400.0, n_spk) if n_spk else []
        traces.append(add_spikes(rc_step(a), times))
    out = model_features(amps, traces, DT)
    json.dumps(out, allow_nan=False)  # strictly JSON-safe
    assert out["I_thr_nA"] == pytest.approx(0.1)
    assert out["s_thr_Hz_per_nA"] == pytest.approx(500.0, abs=1e-6)
    fi = fi_curve(amps, traces, DT)
    assert out["rate_at_2x_I_thr_Hz"] == pytest.approx(float(fi.rates_Hz[amps == 0.2][0]))
    assert out["rate_at_3x_I_thr_Hz"] is None  # 0.3 nA lies above the tested range: undefined, not extrapolated
    assert out["input_resistance_MOhm"] == pytest.approx(100.0, rel=1e-4)
    assert out["efel_ref_amp_nA"] == pytest.approx(0.15)
    assert out["efel_hyperpol_amp_nA"] == pytest.approx(-0.2)
    assert out["efel.spike_count"] == int(round(known_rate(0.15) * 0.4))
    assert out["efel.ohmic_input_resistance_vb_ssse"] == pytest.approx(100.0, rel=1e-3)
    assert out["fi_amps_nA"] == pytest.approx(list(amps))


def test_rate_at_interpolates_inside_the_tested_range_only():
    fi = FICurve(np.array([0.1, 0.2, 0.4]), np.array([10.0, 30.0, 50.0]))
    assert rate_at(fi, 0.15) == pytest.approx(20.0)
    assert rate_at(fi, 0.3) == pytest.approx(40.0)
    assert rate_at(fi, 0.4) == pytest.approx(50.0)
    assert rate_at(fi, 0.41) is None and rate_at(fi, 0.05) is None
    with pytest.raises(TypeError, match="FICurve"):
        rate_at([0.1], 0.1)


# ----------------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=15),
    first=st.integers(min_value=0, max_value=14),
    step=st.floats(min_value=0.01, max_value=0.2),
    gain=st.floats(min_value=1.0, max_value=1000.0),
)
def test_threshold_current_property(n, first, step, gain):
    amps = -0.1 + step * np.arange(n)
    first = min(first, n - 1)
    rates = np.where(np.arange(n) >= first, 1.0 + gain * (amps - amps[first]), 0.0)
    fi = FICurve(amps, rates)
    i_thr = threshold_current(fi)
    k = int(np.flatnonzero(fi.amps_nA == i_thr)[0])
    assert fi.rates_Hz[k] > 0
    assert np.all(fi.rates_Hz[:k] == 0)
    if n - first >= 2:
        assert threshold_slope(fi) == pytest.approx(gain, rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=2, max_size=20
    ).filter(lambda rows: all(np.ptp(np.array(rows), axis=0) > 1e-3))
)
def test_scaler_inverse_is_identity(data):
    x = np.array(data)
    sc = FeatureScaler.fit(x, ["a", "b"])
    y = sc.transform(x)
    assert np.all(y >= 0.5 - 1e-9) and np.all(y <= 3.5 + 1e-9)
    np.testing.assert_allclose(sc.inverse_transform(y), x, atol=1e-6 * (1 + np.abs(x).max()))
    np.testing.assert_allclose(sc.transform(sc.inverse_transform(y)), y, atol=1e-8)


def test_threshold_slope_window_makes_the_slope_continuous():
    """Few-spike firing just above threshold quantises a 3-point slope; a window sees the gain."""
    amps = np.round(np.arange(0.0, 0.31, 0.01), 3)
    rates = np.where(amps < 0.1, 0.0, np.where(amps < 0.15, 2.5, 2.5 + 800.0 * (amps - 0.15)))
    fi = FICurve(amps, rates)
    assert threshold_current(fi) == pytest.approx(0.1)
    assert threshold_slope(fi) == pytest.approx(0.0, abs=1e-9)  # 3 points on the 2.5 Hz plateau
    windowed = threshold_slope(fi, window_nA=0.1)
    x = amps[(amps >= 0.1 - 1e-9) & (amps <= 0.2 + 1e-9)]
    y = np.where(x < 0.15, 2.5, 2.5 + 800.0 * (x - 0.15))
    assert windowed == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    assert windowed > 100
    with pytest.raises(ValueError, match="window_nA"):
        threshold_slope(fi, window_nA=-0.1)


def test_copy_features_from_another_dataset_or_checkpoint(tiny_dataset, tiny_trained, tmp_path):
    import shutil

    import h5py

    from noble_neuron.data.dataset import open_dataset
    from noble_neuron.features.table import copy_features

    dest = tmp_path / "noise.h5"
    shutil.copy(tiny_dataset, dest)
    with h5py.File(dest, "r+") as f:
        del f["features"]
    assert open_dataset(dest).features() == {}
    copy_features(tiny_dataset, dest)
    src, got = open_dataset(tiny_dataset).features(), open_dataset(dest).features()
    assert got["names"] == src["names"]
    np.testing.assert_array_equal(got["values"], src["values"])
    from noble_neuron.cli import main

    # from a checkpoint, a dataset with Long Squares is measured and the checkpoint's features pinned over it
    from noble_neuron.features.table import pin_features
    from noble_neuron.surrogate.checkpoint import load_surrogate

    with h5py.File(dest, "r+") as f:
        f["features/values"][:, src["names"].index("I_thr_nA")] = 9.0  # stale: must be replaced by the checkpoint's
    assert main(["features", "--data", str(dest), "--copy-from", str(tiny_trained[0])]) == 0
    got = open_dataset(dest).features()
    assert got["names"] == src["names"] and "rate_at_2x_I_thr_Hz" in got["names"]
    ckpt = load_surrogate(tiny_trained[0], device="cpu").model_features
    ids = open_dataset(dest).model_ids
    np.testing.assert_allclose(got["values"][:, got["names"].index("I_thr_nA")], [ckpt[m]["I_thr_nA"] for m in ids])
    np.testing.assert_array_equal(got["values"][:, got["names"].index("input_resistance_MOhm")],
                                  src["values"][:, src["names"].index("input_resistance_MOhm")])
    with pytest.raises(ValueError, match="no measured feature 'tau_mystery'"):
        pin_features(dest, ["tau_mystery"], {m: [1.0] for m in ids})
    with pytest.raises(ValueError, match="no features for model"):
        pin_features(dest, ["I_thr_nA"], {ids[0]: [0.1]})
    with h5py.File(dest, "r+") as f:
        del f["features"]
    with pytest.raises(ValueError, match="no /features table"):
        copy_features(dest, dest)
