"""The neuron_reduce baseline: a detailed model with each dendritic subtree collapsed into one cable.

    >>> cell = ReducedCell("hof_017")                    # 237 segments → 33
    >>> syn = h.ExpSyn(cell.soma(0.5))                   # synapses, IClamp, recordings: as usual
    >>> coarse = ReducedCell("hof_017", max_segments_per_section=3)   # a "coarsened frontier" arm

neuron_reduce (Amsalem et al. 2020, ``pip install neuron-reduce``) keeps the soma and the axon of the
detailed cell and replaces every dendritic subtree by one cylinder with the same transfer impedance to
the soma at `reduction_frequency_hz`; the subtree's channels are mapped onto the cable by impedance.
It reduces the cell it is given in place, so `ReducedCell` always reduces a fresh instance and the
caller's cells are left untouched.

neuron-reduce 0.0.7 fails on NEURON 9, which lists a mechanism's FUNCTIONs/PROCEDUREs (``rates``) in
``dir(mechanism)``: neuron_reduce reads every name ``dir`` gives as a range variable
(``seg.rates_nn_Ih`` → AttributeError). `_parameter_names_only` fixes that from outside for the
duration of one reduction; see there.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any, Iterator

__all__ = ["ReducedCell"]

_INSTALL_HINT = "the neuron_reduce baseline needs the neuron-reduce package: pip install neuron-reduce"


def _reductor_module():
    try:
        from neuron_reduce import subtree_reductor_func
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    return subtree_reductor_func


def _numeric_names(obj: Any) -> list[str]:
    """`dir(obj)` less every name whose value is not a number (methods, FUNCTIONs, PROCEDUREs, arrays)."""
    names = []
    for name in dir(obj):
        try:
            value = getattr(obj, name)
        except (AttributeError, RuntimeError, TypeError):  # listed but unreadable: no parameter either
            continue
        if isinstance(value, numbers.Real):
            names.append(name)
    return names


@contextlib.contextmanager
def _parameter_names_only(module) -> Iterator[None]:
    """Within the block, `dir` as seen by `module` lists only an object's number-valued attributes.

    neuron_reduce calls `dir` in exactly two places, both to enumerate parameters: a mechanism's range
    variables (to copy them onto the reduced cables) and a point process's parameters (to decide
    whether two synapses can be merged). Numbers are what both want, and all that NEURON < 9 listed
    besides the names they skip themselves. Shadowing the builtin in that module's namespace alone
    leaves their algorithm and every other module untouched, and is a no-op once they filter it.
    """
    missing = object()
    previous = module.__dict__.get("dir", missing)
    module.dir = _numeric_names
    try:
        yield
    finally:
        if previous is missing:
            del module.dir
        else:
            module.dir = previous


def _pop_leaked_sections(h, names: set[str]) -> None:
    """Pop the axon sections neuron_reduce pushed to disconnect them and never popped.

    Its axon handling does `sec.push(); h.disconnect()` without `h.pop_section()`: one section per axon stays
    on NEURON's section stack per reduced cell, and a few hundred cells end in "section stack overflow".
    """
    for _ in range(len(names)):
        try:
            current = h.cas()
        except RuntimeError:  # nothing on the stack
            return
        if current.name() not in names:
            return
        h.pop_section()


def _check_frequency(reduction_frequency_hz: Any) -> float:
    if isinstance(reduction_frequency_hz, bool) or not isinstance(reduction_frequency_hz, numbers.Real):
        raise TypeError(f"reduction_frequency_hz must be a number (Hz), got {type(reduction_frequency_hz).__name__}")
    f = float(reduction_frequency_hz)
    if not (math.isfinite(f) and f >= 0):
        raise ValueError(f"reduction_frequency_hz must be a finite frequency >= 0 Hz (0: the DC reduction), "
                         f"got {reduction_frequency_hz!r}")
    return f


def _check_max_segments(max_segments_per_section: Any) -> int | None:
    if max_segments_per_section is None:
        return None
    if isinstance(max_segments_per_section, bool) or not isinstance(max_segments_per_section, numbers.Integral):
        raise TypeError("max_segments_per_section must be a whole number of segments or None, "
                        f"got {type(max_segments_per_section).__name__}")
    if max_segments_per_section < 1:
        raise ValueError(f"max_segments_per_section must be >= 1 (1: one compartment per section) or None "
                         f"(keep neuron_reduce's 0.1-lambda segmentation), got {max_segments_per_section!r}")
    return int(max_segments_per_section)


def _fresh_detailed_cell(model_id_or_detailed_cell: Any):
    """A new instance of the model to be consumed by the reduction (the caller's cell stays whole)."""
    from ..detailed.pv_family import DetailedCell, get_model

    if isinstance(model_id_or_detailed_cell, DetailedCell):
        return DetailedCell(model_id_or_detailed_cell.spec)
    if isinstance(model_id_or_detailed_cell, str):
        try:
            model = get_model(model_id_or_detailed_cell)
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]}; pass a family model id such as 'hof_017' "
                             "(see noble_neuron.detailed.pv_family.load_family()) or a DetailedCell") from None
        return model.instantiate()
    raise TypeError("ReducedCell needs a family model id (str, e.g. 'hof_017') or a DetailedCell, "
                    f"got {type(model_id_or_detailed_cell).__name__}")


def _check_reducible(detailed) -> None:
    """What neuron_reduce reads off the template, checked before it fails with an AttributeError."""
    missing = [name for name in ("soma", "basal", "apical") if not hasattr(detailed.hoc, name)]
    if missing:
        raise ValueError(f"{detailed.model_id}: neuron_reduce needs a template with public soma, basal and apical "
                         f"(SectionLists; apical may be empty), and this one lacks {', '.join(missing)}: "
                         "declare them public in the template")
    if not detailed.soma.has_membrane("pas"):
        raise ValueError(f"{detailed.model_id}: neuron_reduce takes the soma's passive cable from the pas "
                         "mechanism, which the soma lacks: insert pas in the soma")


class ReducedCell:
    """A family model reduced by neuron_reduce, with the same face as DetailedCell and SurrogateCell.

    `model_id_or_detailed_cell`: a family model id ('hof_017') or a DetailedCell, of which a fresh
    instance is reduced (so changes made to that cell after instantiation are not carried over).
    `reduction_frequency_hz` (Hz): the frequency at which each cable matches its subtree's transfer
    impedance (0, neuron_reduce's usual choice, matches the steady state). `max_segments_per_section`:
    if given, every section (soma and axon included) is then coarsened to at most that many segments.

    `soma` is the soma Section (the detailed soma, with its channels); `sections` the cell's Sections,
    `n_segments` their total number of segments. Build it before ``h.finitialize``: neuron_reduce
    initialises the model (``h.init()``) while reducing.
    """

    def __init__(self, model_id_or_detailed_cell: Any, reduction_frequency_hz: float = 0.0,
                 max_segments_per_section: int | None = None) -> None:
        self.reduction_frequency_hz = _check_frequency(reduction_frequency_hz)
        self.max_segments_per_section = _check_max_segments(max_segments_per_section)
        reductor = _reductor_module()
        detailed = _fresh_detailed_cell(model_id_or_detailed_cell)
        _check_reducible(detailed)
        axon_names = {sec.name() for sec in detailed.hoc.axonal} if hasattr(detailed.hoc, "axonal") else set()
        with _parameter_names_only(reductor):
            reduced, _, _ = reductor.subtree_reductor(detailed.hoc, [], [], self.reduction_frequency_hz)
        _pop_leaked_sections(reductor.h, axon_names)
        # neuron_reduce also keeps its cables in the hoc global `reduced_cell`: without clearing it they
        # would outlive this object, cut off from the soma but still simulated, until the next reduction.
        reductor.h.reduced_cell = None
        self.model_id = detailed.model_id
        self.spec = detailed.spec
        # The reduced cell is the detailed soma and axon (owned by the detailed template object) plus
        # neuron_reduce's cables (owned by its hoc model object): both must outlive this object's users.
        self._detailed = detailed
        self._reduced = reduced
        self.soma = detailed.soma
        if self.max_segments_per_section is not None:
            for sec in self.sections:
                sec.nseg = min(sec.nseg, self.max_segments_per_section)

    @property
    def sections(self) -> list:
        """Every Section of the reduced cell (soma, axon, one cable per former dendritic subtree)."""
        return list(self.soma.wholetree())

    @property
    def n_segments(self) -> int:
        """Total number of segments (compartments) of the reduced cell."""
        return sum(sec.nseg for sec in self.sections)

    def __repr__(self) -> str:
        k = self.max_segments_per_section
        coarse = "" if k is None else f", max_segments_per_section={k}"
        return (f"ReducedCell({self.model_id!r}, reduction_frequency_hz={self.reduction_frequency_hz:g}{coarse}; "
                f"{len(self.sections)} sections, {self.n_segments} segments)")
