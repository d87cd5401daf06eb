"""SurrogateCell honours or refuses every input NEURON itself would act on (whole-trace checkpoints)."""
import gc
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from noble_neuron.neuron.engine import CoarseStepWarning, engine
from noble_neuron.surrogate.checkpoint import load_surrogate
from noble_neuron.neuron.cell import SurrogateCell


@pytest.fixture(scope="module")
def tiny(tiny_trained):
    return load_surrogate(tiny_trained[0], device="cpu")


@pytest.fixture(autouse=True)
def no_leftover_cells(h):
    yield
    gc.collect()
    h.cvode_active(0)
    h.dt = 0.025
    h.finitialize(-65)  # clears events a failed run left in the queue
    assert engine().cells() == []


def _step(h, seg, amp=0.2):
    stim = h.IClamp(seg)
    stim.delay, stim.dur, stim.amp = 10.0, 40.0, amp
    return stim


def test_an_iclamp_at_either_end_of_the_soma_drives_the_cell_like_one_at_its_centre(h, tiny):
    cell = SurrogateCell("bs0", checkpoint=tiny)
    stim = _step(h, cell.soma(0.5))
    h.finitialize(-65)
    centre = cell.prediction_mV
    for x in (0.0, 1.0):
        stim = _step(h, cell.soma(x))  # replaces the previous one (its last reference)
        h.finitialize(-65)
        np.testing.assert_array_equal(cell.prediction_mV, centre)
        assert cell.domain["amplitude_nA"] == pytest.approx(0.2)
    del stim, cell


def test_changing_an_iclamp_between_two_continuerun_calls_is_refused_not_ignored(h, tiny):
    cell = SurrogateCell("bs0", checkpoint=tiny)
    stim = _step(h, cell.soma(0.5))
    h.finitialize(-65)
    h.continuerun(20.0)
    stim.amp = 0.1
    with pytest.raises(RuntimeError):
        h.continuerun(40.0)
    h.finitialize(-65)  # re-predicts with the new amplitude: fine again
    h.continuerun(40.0)
    assert cell.domain["amplitude_nA"] == pytest.approx(0.1)
    del stim, cell


def test_an_iclamp_or_a_cell_created_after_finitialize_is_refused(h, tiny):
    cell = SurrogateCell("bs0", checkpoint=tiny)
    h.finitialize(-65)
    h.continuerun(5.0)
    stim = _step(h, cell.soma(0.5))
    with pytest.raises(RuntimeError):
        h.continuerun(20.0)
    del stim
    h.finitialize(-65)
    late = SurrogateCell("bs1", checkpoint=tiny)
    with pytest.raises(RuntimeError):
        h.continuerun(20.0)
    del late, cell


def test_the_refusal_names_the_problem(h, tiny):
    from noble_neuron.neuron.engine import SurrogateCellError

    cell = SurrogateCell("bs0", checkpoint=tiny)
    h.finitialize(-65)
    late = SurrogateCell("bs1", checkpoint=tiny)
    with pytest.raises(SurrogateCellError, match="created after h.finitialize"):
        engine().check_inputs()
    del late
    gc.collect()
    stim = _step(h, cell.soma(0.5))
    with pytest.raises(SurrogateCellError, match="changed during the run.*Call h.finitialize\\(\\) again"):
        engine().check_inputs()
    del stim, cell


def test_a_section_attached_to_the_surrogate_soma_is_refused(h, tiny):
    cell = SurrogateCell("bs0", checkpoint=tiny)
    dend = h.Section(name="dend")
    dend.connect(cell.soma(1))
    with pytest.raises(RuntimeError):
        h.finitialize(-65)
    h.disconnect(sec=dend)
    del dend, cell


def test_a_fixed_step_that_can_jump_over_spikes_warns_and_a_fine_one_does_not(h, tiny):
    cell = SurrogateCell("bs0", checkpoint=tiny)
    stim = _step(h, cell.soma(0.5), 0.3)
    nc = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)
    nc.threshold = 0.0
    h.dt = 0.025
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoarseStepWarning)
        h.finitialize(-65)
    h.dt = 2.0
    with pytest.warns(CoarseStepWarning, match="can jump over spikes"):
        h.finitialize(-65)
    h.dt = 0.025
    del nc, stim, cell


def test_surrogate_cell_works_before_stdrun_is_loaded(tiny_trained):
    code = textwrap.dedent(f"""
        from neuron import h
        from noble_neuron import SurrogateCell
        cell = SurrogateCell("bs0", checkpoint={str(tiny_trained[0])!r})
        stim = h.IClamp(cell.soma(0.5)); stim.delay, stim.dur, stim.amp = 10, 40, 0.2
        h.finitialize(-65); h.continuerun(50)
        print("t", h.t)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "t 50" in out.stdout


def test_absurd_inputs_are_refused_and_finitialize_lets_a_script_catch_why(h, tiny):
    from noble_neuron import finitialize

    cell = SurrogateCell("bs0", checkpoint=tiny)
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = 5.0, 40.0, 300.0  # pA meant, nA given
    h.cvode_active(0)
    with pytest.raises(RuntimeError, match="Python Callback failed"):  # NEURON's own wrapper around the refusal
        h.finitialize(-65)
    assert isinstance(engine().last_error, ValueError)
    with pytest.raises(ValueError, match=r"300 nA .* more than 100× the largest amplitude .* currents are in nA"):
        finitialize(-65)  # the refusal itself
    stim.amp = 0.2
    finitialize(-65)  # fixed: the same cell runs
    h.continuerun(20.0)
    assert engine().last_error is None
    with pytest.raises(ValueError, match=r"I_thr_nA = 70 .*check the units"):
        SurrogateCell(features={"I_thr_nA": 70.0, "s_thr_Hz_per_nA": float(tiny.features_of("bs0")[1])},
                      checkpoint=tiny)
    del cell, stim


def test_neuron_settings_a_surrogate_cannot_follow_are_refused_or_warned(h, tiny):
    from noble_neuron import finitialize
    from noble_neuron.neuron.engine import SurrogateCellError
    from noble_neuron.surrogate.model import DomainWarning

    assert tiny.metrics["dataset"]["celsius_degC"] == pytest.approx(6.3)  # the tiny family's global.celsius
    cell = SurrogateCell("bs0", checkpoint=tiny)
    stim = h.IClamp(cell.soma(0.5))
    stim.delay, stim.dur, stim.amp = 5.0, 40.0, 0.2
    h.cvode_active(0)
    before = h.celsius
    try:
        h.celsius = 6.3
        with warnings.catch_warnings():
            warnings.simplefilter("error", DomainWarning)
            finitialize(-65)
        h.celsius = 20.0
        with pytest.warns(DomainWarning, match=r"h.celsius = 20 °C, but the surrogate was trained at 6.3 °C"):
            finitialize(-65)
        h.celsius = 6.3
        h.secondorder = 2
        with pytest.raises(SurrogateCellError, match="secondorder = 2 .* set h.secondorder = 0"):
            finitialize(-65)
    finally:
        h.secondorder = 0
        h.celsius = before
    del cell, stim
