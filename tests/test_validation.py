"""One rule for numbers in argument checks: bools are not numbers, numpy scalars are, and what is
accepted stays JSON-able (specs and protocols travel as JSON to workers, signatures and datasets)."""
import json

import numpy as np
import pytest

from noble_neuron.detailed.spec import CellSpec
from noble_neuron.stimuli.protocols import LongSquare
from noble_neuron.stimuli.presets import RheobaseRelativeSteps
from noble_neuron.validation import is_int, is_real


def test_bools_are_not_numbers_numpy_scalars_are():
    assert is_int(3) and is_int(np.int64(3)) and not is_int(True) and not is_int(np.bool_(True)) and not is_int(3.0)
    assert is_real(0.5) and is_real(np.float32(0.5)) and is_real(2) and not is_real(False) and not is_real("1")


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    p = LongSquare(step_nA=np.float32(0.25), delay_ms=np.int64(10), dur_ms=50.0, total_ms=80.0)
    assert json.loads(p.to_json())["step_nA"] == pytest.approx(0.25) and type(p.delay_ms) is float
    plan = RheobaseRelativeSteps(n_depol=np.int64(6), seed=np.int32(2))
    assert type(plan.n_depol) is int and json.dumps(plan.to_dict())
    spec = CellSpec("m", "x.hoc", "X", None, {"somatic.gnabar_hh": np.float32(0.12), "all.cm": 1})
    assert all(type(v) is float for v in spec.parameters.values()) and json.dumps(spec.to_dict())
    with pytest.raises(TypeError, match="must be a number"):
        CellSpec("m", "x.hoc", "X", None, {"somatic.gnabar_hh": True})
    with pytest.raises(ValueError, match="integer >= 0"):
        RheobaseRelativeSteps(n_hyper=True)
