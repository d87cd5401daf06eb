"""Shared fixtures: a tiny real NEURON cell (built-in HH) and short protocols."""
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


@pytest.fixture(scope="session")
def ball_stick_spec():
    from noble_neuron.simulate import CellSpec

    return CellSpec(
        model_id="ball_stick",
        template_path=str(DATA / "ball_stick.hoc"),
        template_name="BallStick",
        mechanisms_dir=None,
        parameters={"somatic.gnabar_hh": 0.12, "all.cm": 1.0, "global.celsius": 6.3},
    )


def short_step(amp_nA: float, total_ms: float = 60.0):
    """A short Long Square (10 ms delay, 40 ms step) so real simulations take milliseconds."""
    from noble_neuron.protocols import LongSquare

    return LongSquare(step_nA=amp_nA, delay_ms=10.0, dur_ms=40.0, total_ms=total_ms)
