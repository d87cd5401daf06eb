"""`GIFCell`: a fitted GIF neuron (Pozzorini et al. 2015) as a NEURON cell with a `soma`, like a detailed cell.

    >>> cell = GIFCell("hof_017")                   # the shipped fit of a family model
    >>> syn = h.ExpSyn(cell.soma(0.5))              # synapses, IClamp, NetCon sources: as usual

The soma is one compartment whose membrane area makes its capacitance (cm 1 uF/cm2) the fitted C; all its
non-synaptic currents are the ``nn_GIF`` point process (mod/nn_GIF.mod): leak, spike-triggered current, moving
threshold, reset. Firing is deterministic (a spike where v reaches the threshold).
"""
from __future__ import annotations

from ..baselines.gif import SPIKE_TOP_MV, GIFParams, load_gif_fits
from .point_cell import PointNeuronCell

__all__ = ["GIFCell"]


class GIFCell(PointNeuronCell):
    """One GIF neuron (`params`, or the shipped fit of a family model id) on a one-compartment soma."""

    params_type, mechanism_name, fit_command = GIFParams, "nn_GIF", "fit-gif"

    @classmethod
    def _load_fits(cls) -> dict[str, GIFParams]:
        return load_gif_fits()

    def mechanism_values(self) -> dict[str, float]:
        p = self.params
        values = {"gl": p.gl_uS, "el": p.el_mV, "vt_star": p.vt_star_mV, "v_reset": p.v_reset_mV,
                  "t_ref": p.t_ref_ms, "v_top": SPIKE_TOP_MV}
        for k, (eta, gamma, tau) in enumerate(zip(p.eta_nA, p.gamma_mV, p.taus_ms), start=1):
            values.update({f"eta{k}": eta, f"gamma{k}": gamma, f"tau{k}": tau})
        return values
