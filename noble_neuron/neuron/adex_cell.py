"""`AdExCell`: a fitted AdEx neuron as a NEURON cell with a `soma`, interchangeable with a detailed cell.

    >>> cell = AdExCell("hof_017")                  # the shipped fit of a family model
    >>> syn = h.ExpSyn(cell.soma(0.5))              # synapses, IClamp, NetCon sources: as usual
    >>> nc = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)   # or cell.spike_source()

The soma is one compartment whose membrane area makes its capacitance (cm 1 uF/cm2) the fitted C;
all its non-synaptic currents are the ``nn_AdEx`` point process (mod/nn_AdEx.mod).
"""
from __future__ import annotations

from ..baselines.adex import SPIKE_TOP_MV, AdExParams, load_fits
from .point_cell import PointNeuronCell

__all__ = ["AdExCell"]


class AdExCell(PointNeuronCell):
    """One AdEx neuron (`params`, or the shipped fit of a family model id) on a one-compartment soma."""

    params_type, mechanism_name, fit_command = AdExParams, "nn_AdEx", "fit-adex"

    @classmethod
    def _load_fits(cls) -> dict[str, AdExParams]:
        return load_fits()

    def mechanism_values(self) -> dict[str, float]:
        p = self.params
        return {"gl": p.gl_uS, "el": p.el_mV, "vt": p.vt_mV, "delta_t": p.delta_t_mV, "a": p.a_uS, "b": p.b_nA,
                "tau_w": p.tau_w_ms, "v_reset": p.v_reset_mV, "v_peak": p.v_peak_mV, "t_ref": p.t_ref_ms,
                "v_top": SPIKE_TOP_MV}
