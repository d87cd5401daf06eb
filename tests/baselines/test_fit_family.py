"""`noble-neuron fit-adex` end to end on a tiny real NEURON dataset (ball-and-stick HH cell)."""
import json

import numpy as np
import pytest

from conftest import DATA


@pytest.fixture(scope="module")
def noise_dataset(tmp_path_factory):
    """One ball-and-stick model: 4 OU currents and a step of 600 ms (a few seconds of NEURON)."""
    from noble_neuron.detailed.spec import CellSpec
    from noble_neuron.simulation.datagen import generate
    from noble_neuron.stimuli.protocols import LongSquare, OUNoise

    spec = CellSpec("bs0", str(DATA / "ball_stick.hoc"), "BallStick", None,
                    {"somatic.gnabar_hh": 0.12, "all.cm": 1.0, "global.celsius": 6.3})
    on = dict(delay_ms=15.0, dur_ms=585.0, total_ms=600.0)
    protocols = [OUNoise(mean_nA=m, sigma_nA=0.04, tau_ms=5.0, seed=k, **on)
                 for k, m in enumerate([0.02, 0.04, 0.03, 0.05])] + [LongSquare(step_nA=0.1, **on)]
    return generate([spec], protocols, tmp_path_factory.mktemp("adex") / "noise.h5", splits=["train"],
                    engine="serial", progress=False)


def test_fit_one_model_scores_held_out_traces(noise_dataset):
    from noble_neuron.baselines.fit_family import FIT_OU_TRACES, fit_one_model, held_out_summary

    r = fit_one_model(noise_dataset, "bs0", iterations=2)
    p = r["params"]
    assert p.C_nF > 0 and p.gl_uS > 0 and np.isfinite(r["loss"])
    assert r["held_out"]["kinds"] == ["ou_noise"] * (4 - FIT_OU_TRACES)  # the 4th OU current, never fitted on
    summary = held_out_summary({"bs0": r["held_out"]})
    assert summary["all"]["n_traces"] == 1 and set(summary["per_kind"]) == {"ou_noise"}


def test_fit_adex_cli_refuses_a_dataset_without_noise_traces(tiny_dataset, tmp_path, capsys):
    from noble_neuron.cli import main

    rc = main(["fit-adex", "--data", str(tiny_dataset), "--out", str(tmp_path / "f.json"), "--no-progress"])
    assert rc != 0 and "--protocol streaming" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


def test_fit_adex_cli_writes_fits_and_report(noise_dataset, tmp_path, monkeypatch):
    import noble_neuron.baselines.fit_family as ff
    from noble_neuron.baselines.adex import load_fits
    from noble_neuron.cli import main

    fast = ff.fit_one_model
    monkeypatch.setattr(ff, "fit_one_model", lambda path, m: fast(path, m, iterations=1))
    out, report = tmp_path / "fits.json", tmp_path / "report.json"
    assert main(["fit-adex", "--data", str(noise_dataset), "--out", str(out), "--report", str(report),
                 "--no-progress"]) == 0
    assert set(load_fits(out)) == {"bs0"}
    rep = json.loads(report.read_text())
    assert rep["held_out"]["all"]["n_traces"] == 1 and "cpu" in rep["machine"]
    assert "--report" in rep["command"]


def test_fit_adex_cli_refuses_a_folder_as_out(noise_dataset, tmp_path):
    from noble_neuron.cli import main

    with pytest.raises(SystemExit, match="is a folder"):
        main(["fit-adex", "--data", str(noise_dataset), "--out", str(tmp_path), "--no-progress"])


def test_fit_dataset_refuses_unknown_models(noise_dataset):
    from noble_neuron.baselines.fit_family import fit_dataset

    with pytest.raises(KeyError, match="not in"):
        fit_dataset(noise_dataset, ["nope"], progress=False)
