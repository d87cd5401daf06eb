"""`HybridCell`: a detailed model's own soma and axon, its dendrites replaced by the current they draw.

    >>> cell = HybridCell("hof_017")               # the shipped fit of a family model
    >>> syn = h.ExpSyn(cell.soma(0.5))             # synapses, IClamp, NetCon on soma v: as with the detailed cell
    >>> cell = HybridCell(my_spec)                 # any model with somatic/axonal SectionLists: fitted in ~25 s

The soma and axon keep the detailed model's sections, channels and densities, so spikes, refractoriness and the
slow K/Ca currents are the true kinetics; the dendritic sections are deleted and replaced by one
``nn_DendriteLoad`` point process (mod/nn_DendriteLoad.mod): a passive linear filter of the soma voltage and a
spike-triggered current, fitted on the axial current the detailed soma feeds its dendrites and chosen by
closed-loop spike timing (`noble_neuron.simulation.dendrite_load`). Synapses
must sit on the soma or axon (the dendrites are gone). Plain NEURON and NMODL: no Python in the time loop, so it
runs under fixed step, CVode, MPI and CoreNEURON (tested: the same spike times as NEURON) like any cell.
"""
from __future__ import annotations

from typing import Any

from ..constants import SPIKE_THRESHOLD_MV
from ..simulation.dendrite_load import (DendriteLoad, attach_load, instantiate_model, load_shipped_loads,
                                         measure_dendrite_load)

__all__ = ["HybridCell", "has_shipped_load"]

_SHIPPED: dict[str, DendriteLoad] | None = None
#: attribute names (lower case, no plural s) under which users reach a detailed cell's dendrites
_DENDRITIC_NAMES = {"dend", "dendrite", "apic", "apical", "basal", "tuft", "oblique"}


def _shipped_load(model_id: str) -> DendriteLoad | None:
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = load_shipped_loads()
    return _SHIPPED.get(model_id)


def has_shipped_load(model_id: object) -> bool:
    """True when `model_id` names a family model whose dendritic load ships (a HybridCell needs no fit)."""
    return isinstance(model_id, str) and _shipped_load(model_id) is not None


class HybridCell:
    """A detailed model (family id or HofModel/CellSpec) with its dendrites replaced by their fitted current.

    `load`: a `DendriteLoad` to use; by default the shipped fit of a family model, else fitted now (~25 s).
    `max_nseg`: cap the kept sections' segments (1: soma, AIS and axon stub one each; ~2× faster, see
    docs/network_mode.md for what it costs).
    """

    def __init__(self, model: Any, load: DendriteLoad | None = None, max_nseg: int | None = None) -> None:
        from ..detailed.mechanisms import load_mechanisms

        if max_nseg is not None and (not isinstance(max_nseg, int) or max_nseg < 1):
            raise ValueError(f"max_nseg must be a positive int (segments per kept section), got {max_nseg!r}")
        load_mechanisms()
        model_id = model if isinstance(model, str) else getattr(model, "model_id", None)
        if load is None and isinstance(model, str):
            load = _shipped_load(model)
        if load is None:
            load = measure_dendrite_load(model)
        if not isinstance(load, DendriteLoad):
            raise TypeError(f"load must be a DendriteLoad, got {type(load).__name__}")
        self.model_id, self.load = model_id, load
        self.detailed = instantiate_model(model)
        self.soma = self.detailed.soma
        self.mechanism = attach_load(self.detailed, load)
        if max_nseg is not None:
            for sec in self.sections:
                sec.nseg = min(sec.nseg, max_nseg)
        self.n_segments = sum(sec.nseg for sec in self.sections)

    @property
    def sections(self) -> list:
        """The cell's remaining sections (soma first, then the axon)."""
        return list(getattr(self.detailed, "hoc", self.detailed).all)

    def __getattr__(self, name: str) -> Any:
        # only called for attributes the cell does not have: say why a dendritic one is missing
        if name.lower().rstrip("s") in _DENDRITIC_NAMES:
            raise AttributeError(
                f"HybridCell({self.__dict__.get('model_id')!r}) has no {name!r}: it keeps the detailed model's soma and "
                "axon only and replaces the dendrites by the current they draw (nn_DendriteLoad), so synapses go on "
                "cell.soma (or an axon section); for inputs placed along the dendrites use the detailed model")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def spike_source(self, target: Any = None, threshold_mV: float = SPIKE_THRESHOLD_MV) -> Any:
        """A NetCon from this cell's soma voltage (threshold crossings) to `target` (None: for recording)."""
        from neuron import h

        nc = h.NetCon(self.soma(0.5)._ref_v, target, sec=self.soma)
        nc.threshold = threshold_mV
        return nc

    def __repr__(self) -> str:
        return f"HybridCell({self.model_id!r}, {self.n_segments} segments + dendritic load)"
