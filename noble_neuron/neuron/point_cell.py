"""`PointNeuronCell`: a fitted point-neuron baseline (AdEx, GIF) as a NEURON cell with a `soma`.

The soma is one compartment whose membrane area makes its capacitance (cm 1 uF/cm2) the fitted C; all its
non-synaptic currents are one point process (the model's NMODL mechanism). Synapses, IClamp and NetCon sources
attach to ``cell.soma`` as on a detailed cell; `spike_source()` gives the mechanism's own spike events.
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["PointNeuronCell"]


class PointNeuronCell:
    """Base of `AdExCell` and `GIFCell`: subclasses name their parameter type, mechanism and shipped fits."""

    params_type: type = object
    mechanism_name = ""  # the NMODL point process, e.g. "nn_AdEx"
    fit_command = ""  # the command that fits its parameters, for error messages
    _fits: dict[str, Any] | None = None

    @classmethod
    def _load_fits(cls) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def shipped_fit(cls, model_id: str) -> Any:
        """The shipped fit of a family model (`KeyError` naming the fix when there is none)."""
        if cls._fits is None:
            cls._fits = cls._load_fits()
        if model_id not in cls._fits:
            raise KeyError(f"no shipped {cls.__name__} fit for {model_id!r}; fitted models: {sorted(cls._fits)[:5]}… "
                           f"(fit your own with `noble-neuron {cls.fit_command}` and pass {cls.__name__}(params))")
        return cls._fits[model_id]

    def __init__(self, params: Any, name: str | None = None) -> None:
        from neuron import h

        from ..detailed.mechanisms import load_mechanisms

        load_mechanisms()
        self.model_id = params if isinstance(params, str) else None
        self.params = self.shipped_fit(params) if isinstance(params, str) else params
        if not isinstance(self.params, self.params_type):
            raise TypeError(f"{type(self).__name__} needs {self.params_type.__name__} or a family model id, got "
                            f"{type(params).__name__}")
        kind = self.mechanism_name.removeprefix("nn_").lower()
        self.soma = h.Section(name=name or f"{kind}_{self.model_id or id(self)}")
        area_um2 = self.params.C_nF * 1e5  # cm = 1 uF/cm2 = 1e-5 nF/um2
        self.soma.L = self.soma.diam = math.sqrt(area_um2 / math.pi)
        self.soma.cm, self.soma.nseg = 1.0, 1
        self.mechanism = getattr(h, self.mechanism_name)(self.soma(0.5))
        for attr, value in self.mechanism_values().items():
            setattr(self.mechanism, attr, float(value))

    def mechanism_values(self) -> dict[str, float]:
        """The mechanism's parameters (by NMODL name) that realise `self.params`."""
        raise NotImplementedError

    def spike_source(self, target: Any = None) -> Any:
        """A NetCon from this cell's spikes (the mechanism's events) to `target` (None: for recording).

        Under CoreNEURON take spikes from here: a NetCon on soma v misses the spike the mechanism draws there."""
        from neuron import h

        return h.NetCon(self.mechanism, target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id or self.params})"

