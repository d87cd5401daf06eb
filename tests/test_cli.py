"""The noble-neuron command line on a user's own template (real NEURON), and its error messages."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA
from noble_neuron.data.dataset import open_dataset


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "noble_neuron.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture()
def user_model(tmp_path):
    models = tmp_path / "models.json"
    models.write_text(json.dumps([
        {"model_id": "fast", "parameters": {"somatic.gnabar_hh": 0.12, "global.celsius": 6.3}},
        {"model_id": "slow", "parameters": {"somatic.gnabar_hh": 0.09, "global.celsius": 6.3}},
    ]))
    protocol = tmp_path / "steps.yaml"
    protocol.write_text(
        "protocols:\n"
        + "".join(f"  - {{kind: long_square, step_nA: {a}, delay_ms: 10, dur_ms: 100, total_ms: 120}}\n"
                  for a in (-0.05, 0.0, 0.02, 0.05, 0.1, 0.2, 0.3))
    )
    return models, protocol


def test_generate_own_template_with_features(tmp_path, user_model):
    models, protocol = user_model
    out = tmp_path / "d.h5"
    r = _cli("generate", "--models", str(models), "--template", str(DATA / "ball_stick.hoc"),
             "--template-name", "BallStick", "--protocol", str(protocol), "--out", str(out),
             "--workers", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    ds = open_dataset(out)
    assert ds.complete and ds.model_ids == ["fast", "slow"]
    feats = ds.features()
    names = feats["names"]
    i_thr = feats["values"][:, names.index("I_thr_nA")]
    assert np.all(np.isfinite(i_thr)) and np.all((i_thr > 0) & (i_thr <= 0.3))
    assert feats["fi_rates_Hz"].shape == (2, 7)
    rin = feats["values"][:, names.index("input_resistance_MOhm")]
    assert np.all((rin > 5) & (rin < 500))


@pytest.mark.parametrize("args, message", [
    (["generate", "--models", "nope.json", "--out", "x.h5"], "no such file"),
    (["generate", "--models", "{models}", "--out", "x.h5"], "--template <file.hoc> --template-name"),
    (["generate", "--models", "{models}", "--template", "missing.hoc", "--template-name", "X", "--out", "x.h5"],
     "does not exist"),
    (["generate", "--models", "{models}", "--template", "{template}", "--template-name", "BallStick",
      "--protocol", "nonsense", "--out", "x.h5"], "neither a preset"),
    (["generate", "--models", "{models}", "--template", "{template}", "--template-name", "BallStick",
      "--protocol", "nonsense", "--out", "x.h5"], "train_draws_48"),  # the per-model presets are named too
    (["generate", "--models", "family", "--max-models", "0", "--out", "x.h5"], "must be >= 1"),
    (["generate", "--models", "family", "--max-models", "-1", "--out", "x.h5"], "leave the option out"),
    (["generate", "--models", "{models}", "--template", "{template}", "--template-name", "BallStick",
      "--protocol", "{protocol}", "--dt", "-0.02", "--out", "x.h5"], "dt_ms must be a positive"),
])
def test_generate_errors_are_clear(tmp_path, user_model, args, message):
    models, protocol = user_model
    args = [a.format(models=models, protocol=protocol, template=DATA / "ball_stick.hoc") for a in args]
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_ctrl_c_says_what_is_kept_instead_of_a_traceback(capsys):
    from argparse import Namespace

    from noble_neuron.cli import _run

    def interrupted(args):
        raise KeyboardInterrupt

    assert _run(Namespace(command="generate", func=interrupted)) == 130
    assert "interrupted; every finished simulation is kept (journal): run the same command again" in \
        capsys.readouterr().err
    assert _run(Namespace(command="train", func=interrupted)) == 130
    assert "every finished epoch is kept" in capsys.readouterr().err


def test_evaluate_never_replaces_results_it_was_not_told_to(tmp_path, monkeypatch, capsys):
    from noble_neuron.cli import main

    monkeypatch.chdir(tmp_path)
    default = tmp_path / "model_evaluation"  # not benchmarks/results: the repository's shipped results
    default.mkdir()
    (default / "accuracy.json").write_text("{}")
    assert main(["evaluate", "--checkpoint", "model.pt", "--data", "d.h5"]) == 2
    err = capsys.readouterr().err
    assert f"{default / 'accuracy.json'} exists" in err and "--overwrite" in err
    assert (default / "accuracy.json").read_text() == "{}"
