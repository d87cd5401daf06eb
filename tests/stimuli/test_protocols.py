import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from noble_neuron.stimuli.presets import PRESETS, load_protocols
from noble_neuron.stimuli.protocols import (
    LongSquare, OUNoise, Ramp, SynapticBarrage, n_samples, protocol_from_dict,
)


def test_long_square_matches_noble_timing():
    p = LongSquare(step_nA=0.2)
    assert (p.delay_ms, p.dur_ms, p.total_ms) == (15.0, 400.0, 515.0)
    x = p.render(0.06)
    assert x.shape == (8583,)  # NOBLE's stored length
    assert p.render(0.02).shape == (25750,)
    t = np.arange(x.size) * 0.06
    on = (t >= 15.0 - 1e-9) & (t < 415.0 - 1e-9)
    assert np.all(x[on] == 0.2) and np.all(x[~on] == 0.0)


@pytest.mark.parametrize("proto", [OUNoise(seed=3), SynapticBarrage(seed=4), Ramp(start_nA=0.1, end_nA=0.3)])
def test_waveforms_do_not_depend_on_dt(proto):
    fine, coarse = proto.render(0.02), proto.render(0.06)
    assert np.allclose(fine[::3][: coarse.size], coarse, atol=1e-12)
    assert np.all(fine[: int(15 / 0.02)] == 0.0)  # nothing before the delay


def test_seeded_noise_is_reproducible_and_seed_dependent():
    a, b, c = OUNoise(seed=1).render(0.06), OUNoise(seed=1).render(0.06), OUNoise(seed=2).render(0.06)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    on = a[int(20 / 0.06): int(410 / 0.06)]
    assert abs(on.mean() - 0.1) < 0.03 and 0.03 < on.std() < 0.08


def test_dict_round_trip_and_unknown_keys():
    for p in [LongSquare(step_nA=-0.11), OUNoise(seed=5), Ramp(), SynapticBarrage(seed=1)]:
        assert protocol_from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="unknown LongSquare key"):
        protocol_from_dict({"kind": "long_square", "step_nA": 0.1, "amplitude": 3})
    with pytest.raises(ValueError, match="unknown protocol kind"):
        protocol_from_dict({"kind": "zap"})


@pytest.mark.parametrize("kwargs, message", [
    ({"dur_ms": 0.0}, "dur_ms must be > 0"),
    ({"dur_ms": -5.0}, "dur_ms must be > 0"),
    ({"delay_ms": -1.0}, "delay_ms must be >= 0"),
    ({"delay_ms": 200.0, "dur_ms": 400.0}, "exceeds total_ms"),
    ({"step_nA": math.nan}, "must be finite"),
])
def test_invalid_protocols_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LongSquare(**kwargs)


@pytest.mark.parametrize("dt", [0.0, -0.02, math.inf, 600.0])
def test_bad_dt_raises(dt):
    with pytest.raises(ValueError, match="dt_ms"):
        LongSquare(step_nA=0.1).render(dt)


def test_presets_and_files(tmp_path):
    train = PRESETS["train"]()
    amps = [p.step_nA for p in train]
    assert min(amps) == pytest.approx(-0.11) and max(amps) >= 0.35
    f = tmp_path / "p.yaml"
    f.write_text("long_square_grid: {start_nA: 0.0, stop_nA: 0.1, step_nA: 0.05}\n"
                 "protocols:\n  - {kind: ramp, start_nA: 0.0, end_nA: 0.2}\n")
    loaded = load_protocols(f)
    assert [p.kind for p in loaded] == ["ramp", "long_square", "long_square", "long_square"]
    with pytest.raises(ValueError, match="neither a preset"):
        load_protocols(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("colour: red\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_protocols(tmp_path / "bad.yaml")


@settings(max_examples=40, deadline=None)
@given(amp=st.floats(-1, 1), delay=st.floats(0, 100), dur=st.floats(1, 300), dt=st.sampled_from([0.02, 0.025, 0.06, 0.1]))
def test_step_render_properties(amp, delay, dur, dt):
    total = delay + dur + 10.0
    p = LongSquare(step_nA=amp, delay_ms=delay, dur_ms=dur, total_ms=total)
    x = p.render(dt)
    assert x.size == n_samples(total, dt)
    assert set(np.unique(x)).issubset({0.0, amp})
    on = np.count_nonzero(x == amp) if amp != 0 else None
    if on is not None:
        assert abs(on * dt - dur) <= dt + 1e-6
