"""`AdExCell`: a fitted AdEx neuron as a NEURON cell with a `soma`, interchangeable with a detailed cell.

    >>> cell = AdExCell("hof_017")                  # the shipped fit of a family model
    >>> syn = h.ExpSyn(cell.soma(0.5))              # synapses, IClamp, NetCon sources: as usual
    >>> nc = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)   # or cell.spike_source()

The soma is one compartment whose membrane area makes its capacitance (cm 1 uF/cm2) the fitted C;
all its non-synaptic currents are the ``nn_AdEx`` point process (mod/nn_AdEx.mod).
"""
from __future__ import annotations

import math
from typing import Any

from ..baselines.adex import SPIKE_TOP_MV, AdExParams, load_fits

__all__ = ["AdExCell"]

_FITS: dict[str, AdExParams] | None = None


def _shipped_fit(model_id: str) -> AdExParams:
    global _FITS
    if _FITS is None:
        _FITS = load_fits()
    if model_id not in _FITS:
        raise KeyError(f"no shipped AdEx fit for {model_id!r}; fitted models: {sorted(_FITS)[:5]}… "
                       "(fit your own with `noble-neuron fit-adex` and pass AdExCell(params))")
    return _FITS[model_id]


class AdExCell:
    """One AdEx neuron (`params`, or the shipped fit of a family model id) on a one-compartment soma."""

    def __init__(self, params: AdExParams | str, name: str | None = None) -> None:
        from neuron import h

        from ..detailed.mechanisms import load_mechanisms

        load_mechanisms()
        self.model_id = params if isinstance(params, str) else None
        self.params = _shipped_fit(params) if isinstance(params, str) else params
        if not isinstance(self.params, AdExParams):
            raise TypeError(f"AdExCell needs AdExParams or a family model id, got {type(params).__name__}")
        self.soma = h.Section(name=name or f"adex_{self.model_id or id(self)}")
        area_um2 = self.params.C_nF * 1e5  # cm = 1 uF/cm2 = 1e-5 nF/um2
        self.soma.L = self.soma.diam = math.sqrt(area_um2 / math.pi)
        self.soma.cm, self.soma.nseg = 1.0, 1
        self.mechanism = h.nn_AdEx(self.soma(0.5))
        p = self.params
        for attr, value in (("gl", p.gl_uS), ("el", p.el_mV), ("vt", p.vt_mV), ("delta_t", p.delta_t_mV),
                            ("a", p.a_uS), ("b", p.b_nA), ("tau_w", p.tau_w_ms), ("v_reset", p.v_reset_mV),
                            ("v_peak", p.v_peak_mV), ("t_ref", p.t_ref_ms),
                            ("v_top", SPIKE_TOP_MV)):
            setattr(self.mechanism, attr, float(value))

    def spike_source(self, target: Any = None) -> Any:
        """A NetCon from this cell's spikes (threshold crossings at v_peak) to `target` (None: for recording)."""
        from neuron import h

        return h.NetCon(self.mechanism, target)

    def __repr__(self) -> str:
        return f"AdExCell({self.model_id or self.params})"
