"""The GIF baseline: its fit recovers a known GIF, its NEURON mechanism fires as the integrator, the shipped fits."""
import json
import math

import numpy as np
import pytest
from scipy.signal import lfilter

from noble_neuron.baselines.gif import (SHIPPED_GIF_FITS, GIFParams, fit_gif, load_gif_fits, save_gif_fits,
                                        score_gif, simulate_gif)

DT = 0.025
KNOWN = GIFParams(C_nF=0.08, gl_uS=0.01, el_mV=-72.0, v_reset_mV=-65.0, vt_star_mV=-52.0, dv_mV=1.0,
                  eta_nA=(0.3, 0.05, 0.01, 0.0, 0.0), gamma_mV=(6.0, 2.0, 0.0, 0.0, 0.0))


def _ou(seed: int, seconds: float = 4.0, mean: float = 0.22, sd: float = 0.12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = math.exp(-DT / 5.0)
    n = int(seconds * 1000 / DT)
    return mean + lfilter([1.0], [1.0, -a], rng.standard_normal(n) * sd * math.sqrt(1 - a * a))


def test_fit_recovers_a_known_gif_from_its_noise_responses():
    traces = [(simulate_gif(KNOWN, i, DT)[0], i) for i in (_ou(0), _ou(1, mean=0.3))]
    fit = fit_gif(traces, DT)
    assert fit.C_nF == pytest.approx(KNOWN.C_nF, rel=0.05)
    assert fit.gl_uS == pytest.approx(KNOWN.gl_uS, rel=0.1)
    assert fit.el_mV == pytest.approx(KNOWN.el_mV, abs=1.0)
    assert fit.eta_nA[0] == pytest.approx(KNOWN.eta_nA[0], rel=0.2)
    assert fit.v_reset_mV == pytest.approx(KNOWN.v_reset_mV, abs=0.5)
    # a deterministic cell's escape rate is a step: a sharp, well-placed threshold
    assert fit.dv_mV < 0.5
    assert fit.vt_star_mV == pytest.approx(KNOWN.vt_star_mV, abs=1.5)
    held_out = _ou(2, mean=0.26)
    score = score_gif(fit, simulate_gif(KNOWN, held_out, DT)[0], held_out, DT)
    assert score["rate_Hz_detailed"] > 10
    assert score["gamma_2ms"] > 0.8
    assert abs(score["rate_Hz_gif"] / score["rate_Hz_detailed"] - 1) < 0.1


@pytest.mark.parametrize("cvode", [0, 1])
def test_neuron_mechanism_fires_as_the_integrator(h, cvode):
    from noble_neuron.neuron.gif_cell import GIFCell

    current = _ou(3, seconds=1.0)
    _, s_np = simulate_gif(KNOWN, current, DT)
    cell = GIFCell(KNOWN)
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur = 0, 1e9
    played = h.Vector(current)
    played.play(stim._ref_amp, DT)
    times = h.Vector()
    nc = cell.spike_source()
    nc.record(times)
    soma_det = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)
    soma_det.threshold = -20
    soma_times = h.Vector()
    soma_det.record(soma_times)
    h.cvode_active(cvode)
    h.dt = DT
    try:
        h.finitialize(KNOWN.el_mV)
        h.continuerun(current.size * DT - DT)
    finally:
        played.play_remove()
        h.cvode_active(0)
    s = np.array(times)
    assert s_np.size >= 10
    assert abs(s.size - s_np.size) <= (0 if cvode == 0 else 1)
    assert np.max(np.abs(s[:10] - s_np[:10])) < 0.5
    assert np.array(soma_times).size == s.size  # a soma-voltage detector (NetPyNE's) sees every spike


def test_shipped_fits_cover_the_family_and_beat_chance_on_held_out_current():
    from noble_neuron.detailed.pv_family import load_family

    fits = load_gif_fits()
    assert set(fits) == {m.model_id for m in load_family()}
    for p in fits.values():
        assert 2 < p.tau_m_ms < 40 and p.v_reset_mV < p.vt_star_mV
    report = json.loads((SHIPPED_GIF_FITS.parents[2] / "benchmarks" / "results" / "gif_fits.json").read_text())
    assert set(report["per_model"]) == set(fits)
    assert report["held_out"]["gamma_2ms"] > 0.4


def test_bad_parameters_and_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="C_nF"):
        GIFParams(**{**KNOWN.to_dict(), "C_nF": -1.0})
    with pytest.raises(ValueError, match="one value per kernel mode"):
        GIFParams(**{**KNOWN.to_dict(), "eta_nA": (0.1,)})
    with pytest.raises(ValueError, match="unknown GIF keys"):
        GIFParams.from_dict({**KNOWN.to_dict(), "tau_w": 3})
    path = save_gif_fits({"m": KNOWN}, tmp_path / "fits.json")
    assert load_gif_fits(path)["m"] == KNOWN
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="fit-gif"):
        load_gif_fits(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="fit-gif"):
        load_gif_fits(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="makes the cell fire"):
        fit_gif([(np.full(5000, -70.0), np.zeros(5000))], DT)


def test_gif_cell_names_the_fix_for_an_unknown_model(h):
    from noble_neuron.neuron.gif_cell import GIFCell

    with pytest.raises(KeyError, match="fit-gif"):
        GIFCell("hof_999")
    with pytest.raises(TypeError, match="GIFParams"):
        GIFCell(3.0)


@pytest.mark.slow
def test_fit_gif_command_fits_a_family_model_and_scores_it_on_held_out_current(tmp_path):
    from noble_neuron.cli import main

    out, report = tmp_path / "fits.json", tmp_path / "report.json"
    assert main(["fit-gif", "--models", "hof_017", "--out", str(out), "--report", str(report)]) == 0
    fit = load_gif_fits(out)["hof_017"]
    shipped = load_gif_fits()["hof_017"]
    assert fit == shipped  # the shipped fits are this command's, reproducibly
    held = json.loads(report.read_text())["per_model"]["hof_017"]
    assert held["gamma_2ms"] > 0.5 and held["rate_Hz_detailed"] > 5
    assert main(["fit-gif", "--models", "hof_017", "--out", str(tmp_path)]) != 0  # a folder as --out
