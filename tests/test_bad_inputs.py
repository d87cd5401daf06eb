"""The long tail of bad inputs: each gets an error naming the file/field/value and the fix, before work starts."""
import h5py
import pytest

from noble_neuron.stimuli.protocols import protocol_from_dict

from noble_neuron.stimuli.presets import load_protocols
from noble_neuron.surrogate.model import SurrogateConfig
from noble_neuron.training.train import TrainConfig, train


def test_yaml_numbers_read_as_strings_are_accepted_and_garbage_is_named(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("protocols:\n  - {kind: long_square, step_nA: 2e-1}\n")  # PyYAML: '2e-1' is a str
    assert load_protocols(f)[0].step_nA == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"long_square.step_nA must be a number, got 'lots'"):
        protocol_from_dict({"kind": "long_square", "step_nA": "lots"})


@pytest.mark.parametrize("grid,match", [
    ("{start_nA: 0, stop_nA: 0.3}", "long_square_grid.step_nA is missing"),
    ("{start_nA: 0, stop_nA: 0.3, step_nA: 0}", "needs step_nA > 0"),
    ("{start_nA: 0, stop_nA: 300, step_nA: 0.001}", "almost certainly a unit mistake"),
    ("{start_nA: 0, stop_nA: x, step_nA: 0.1}", "stop_nA must be a number in nA, got 'x'"),
])
def test_bad_long_square_grids_are_named(tmp_path, grid, match):
    f = tmp_path / "g.yaml"
    f.write_text(f"long_square_grid: {grid}\n")
    with pytest.raises(ValueError, match=match):
        load_protocols(f)


def test_an_implausibly_long_window_is_refused():
    with pytest.raises(ValueError, match="check the unit"):
        protocol_from_dict({"kind": "long_square", "step_nA": 0.1, "total_ms": 5e6, "dur_ms": 400.0})


def test_train_refuses_zero_epochs_a_folder_as_out_missing_cuda_and_incomplete_data(tiny_dataset, tmp_path):
    import torch

    sc = SurrogateConfig(n_layers=1, hidden_channels=4, n_modes=8)
    with pytest.raises(ValueError, match="0 epochs would write an untrained checkpoint"):
        train(tiny_dataset, sc, TrainConfig(epochs=0), tmp_path / "m.pt", progress=False)
    with pytest.raises(ValueError, match="is a folder: it must be a checkpoint file"):
        train(tiny_dataset, sc, TrainConfig(epochs=1), tmp_path, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU; use --device cpu"):
            train(tiny_dataset, sc, TrainConfig(epochs=1), tmp_path / "m.pt", progress=False, device="cuda")
    partial = tmp_path / "partial.h5"
    partial.write_bytes(tiny_dataset.read_bytes())
    with h5py.File(partial, "r+") as f:
        f["done"][3] = 0
    with pytest.raises(ValueError, match="is incomplete: 1 of 40 simulations are missing; rerun"):
        train(partial, sc, TrainConfig(epochs=1), tmp_path / "m.pt", progress=False)
    from noble_neuron.features.table import extract_features

    with pytest.raises(ValueError, match="is incomplete"):
        extract_features(partial, progress=False)
    assert not (tmp_path / "m.pt").exists()
