"""Detailed family models as NetPyNE cells (for ``netParams.importCellParams``).

    netParams.importCellParams("PV_detailed", fileName=noble_neuron.detailed.pv_family.netpyne_cells.__file__,
                               cellName="pv_detailed", cellArgs={"model_id": "hof_017"})

NetPyNE instantiates the function's cell, converts its sections, geometry and mechanisms
(with this model's parameters applied) into a dict rule and discards the instance.
Set ``simConfig.hParams`` to the family's globals (celsius 34 °C, v_init −70 mV), and call
`noble_neuron.detailed.mechanisms.load_mechanisms()` first: NetPyNE lists the variables of the loaded
mechanisms before it builds the cell (else it fails with ``KeyError: 'ca_ion'``). Import the rule
before other cells exist in the process: measured here, a rule imported after a NetPyNE run had
been cleared gave silent PV cells (examples/network_swap.py therefore runs the detailed network first).
"""
from __future__ import annotations

__all__ = ["pv_detailed"]


def pv_detailed(model_id: str = "hof_000"):
    """The hoc object of family model `model_id` (mechanisms loaded, parameters applied)."""
    from noble_neuron.detailed.pv_family import get_model

    return get_model(model_id).instantiate().hoc
