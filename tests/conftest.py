"""Shared fixtures: a tiny real NEURON cell (built-in HH) and short protocols."""
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


@pytest.fixture(autouse=True)
def tiny_family_temperature():
    """Each test starts at 6.3 °C (NEURON's default, the tiny ball-and-stick family's): the tiny checkpoints record
    it and their cells warn at another ``h.celsius``; family models set their own 34 °C when built."""
    if "neuron" in sys.modules:
        from neuron import h

        h.celsius = 6.3
    yield


@pytest.fixture()
def torch_one_thread():
    """Tiny models: thread sync costs more than it saves, and on a busy machine far more."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def clean_engine(h):
    """After the test: no SurrogateCell left behind (the engine forgets deleted cells), CVode off."""
    import gc

    from noble_neuron.neuron.engine import engine

    yield
    gc.collect()
    h.cvode_active(0)
    assert engine().cells() == []


@pytest.fixture(scope="session")
def h():
    """NEURON's hoc interpreter with the standard run library (tests that drive h.run / continuerun)."""
    from neuron import h

    h.load_file("stdrun.hoc")
    return h


@pytest.fixture(scope="session")
def ball_stick_spec():
    from noble_neuron.detailed.spec import CellSpec

    return CellSpec(
        model_id="ball_stick",
        template_path=str(DATA / "ball_stick.hoc"),
        template_name="BallStick",
        mechanisms_dir=None,
        parameters={"somatic.gnabar_hh": 0.12, "all.cm": 1.0, "global.celsius": 6.3},
    )


def short_step(amp_nA: float, total_ms: float = 60.0):
    """A short Long Square (10 ms delay, 40 ms step) so real simulations take milliseconds."""
    from noble_neuron.stimuli.protocols import LongSquare

    return LongSquare(step_nA=amp_nA, delay_ms=10.0, dur_ms=40.0, total_ms=total_ms)


# (gnabar_hh S/cm2, cm uF/cm2) → distinct (I_thr, s_thr) pairs on the tiny grid ((0.04, 750),
# (0.04, 375), (0.06, 517)); the last model is held out as 'unseen'.
TINY_MODELS = [(0.12, 1.0), (0.16, 0.8), (0.13, 1.4), (0.11, 1.2)]
TINY_AMPS_NA = [-0.05, 0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A real 60 ms Long Square dataset of 4 ball-and-stick HH cells (3 train, 1 unseen), with features."""
    from noble_neuron.simulation.datagen import generate
    from noble_neuron.features.table import extract_features
    from noble_neuron.detailed.spec import CellSpec

    specs = [CellSpec(f"bs{i}", str(DATA / "ball_stick.hoc"), "BallStick", None,
                      {"somatic.gnabar_hh": g, "all.cm": cm, "global.celsius": 6.3})
             for i, (g, cm) in enumerate(TINY_MODELS)]
    out = generate(specs, [short_step(a, 60.0) for a in TINY_AMPS_NA], tmp_path_factory.mktemp("data") / "bs.h5",
                   splits=["train", "train", "train", "unseen"], engine="serial", progress=False)
    extract_features(out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_trained(tiny_dataset, tmp_path_factory):
    """(checkpoint path, training metrics, config) of a tiny FNO overfit on `tiny_dataset` (~10 s, learns spikes)."""
    import torch

    from noble_neuron.surrogate.model import SurrogateConfig
    from noble_neuron.training.train import TrainConfig, train

    config = SurrogateConfig(n_layers=2, hidden_channels=12, n_modes=128)
    out = tmp_path_factory.mktemp("tiny") / "s.pt"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = train(tiny_dataset, config, TrainConfig(epochs=40, batch_size=8, lr=0.01, val_every_kth_amplitude=0),
                        out, progress=False, device="cpu")
    finally:
        torch.set_num_threads(n)
    return out, metrics, config


@pytest.fixture(scope="session")
def tiny_streaming(tiny_dataset, tmp_path_factory):
    """(checkpoint path, metrics) of a tiny streaming (network-mode) surrogate, 2 epochs (~10 s): the second
    with closed-loop own-spike batches; held-out steps scored closed loop as the engine runs them."""
    from noble_neuron.surrogate.model import SurrogateConfig
    from noble_neuron.training.train import TrainConfig, train

    sc = SurrogateConfig(streaming=True, n_layers=2, hidden_channels=12, state_modes=4, time_coarsening=5,
                         ap_pre_ms=0.12, current_scale_nA=0.1, v_scale_mV=10.0)
    out = tmp_path_factory.mktemp("stream") / "s.pt"
    metrics = train(tiny_dataset, sc, TrainConfig(epochs=2, batch_size=8, lr=0.01, val_every_kth_amplitude=4,
                                                  closed_loop_from_epoch=2, closed_loop_every=1),
                    out, progress=False, device="cpu")
    return out, metrics


@pytest.fixture(scope="session")
def tiny_phase(tiny_dataset, tmp_path_factory):
    """A tiny whole-trace event model (spike phase, backbones with step trains) overfit on `tiny_dataset`."""
    import torch

    from noble_neuron.surrogate.model import SurrogateConfig
    from noble_neuron.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny_phase") / "p.pt"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(tiny_dataset, SurrogateConfig(n_layers=2, hidden_channels=16, n_modes=64, event_output="phase",
                                            time_coarsening=4, pad_to_fast_length=True),
              TrainConfig(epochs=60, batch_size=8, lr=0.01, val_every_kth_amplitude=0), out, progress=False,
              device="cpu")
    finally:
        torch.set_num_threads(n)
    return out


@pytest.fixture(scope="session")
def population(tmp_path_factory):
    """Two ball-and-stick cells the checkpoint never saw (other Na density and capacitance), with features."""
    from noble_neuron.detailed.spec import CellSpec
    from noble_neuron.features.table import extract_features
    from noble_neuron.simulation.datagen import generate

    specs = [CellSpec(f"ref{i}", str(DATA / "ball_stick.hoc"), "BallStick", None,
                      {"somatic.gnabar_hh": g, "all.cm": cm, "global.celsius": 6.3})
             for i, (g, cm) in enumerate([(0.14, 0.9), (0.10, 1.1)])]
    out = generate(specs, [short_step(a, 60.0) for a in TINY_AMPS_NA], tmp_path_factory.mktemp("pop") / "pop.h5",
                   engine="serial", progress=False)
    extract_features(out, progress=False)
    return out


def family_step_voltage(cell, amp_nA: float) -> np.ndarray:
    """The soma voltage (mV, dt 0.025 ms, 515 ms) of a cell (detailed or surrogate) under the family's Long Square
    step (15 ms delay, 400 ms) at 34 °C, initialised at −70 mV: NEURON's standard run."""
    from neuron import h

    h.load_file("stdrun.hoc")
    h.celsius = 34.0
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = 15.0, 400.0, amp_nA
    v = h.Vector().record(cell.soma(0.5)._ref_v)
    h.dt = 0.025
    h.finitialize(-70.0)
    h.continuerun(515.0)
    return v.as_numpy()[:20600].copy()
