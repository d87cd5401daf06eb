"""noble_neuron: drop-in FNO surrogates of detailed NEURON cell models.

The public API, in data-flow order (imported on first use, so ``import noble_neuron`` stays
cheap: NEURON and torch load only when needed)::

    CellSpec, load_family            a detailed model; the shipped PV family  (noble_neuron.detailed)
    generate, open_dataset           training data in HDF5                    (simulation, data)
    train, load_surrogate            a surrogate checkpoint                   (training, surrogate)
    build_surrogate                  all of the above for your own model      (pipeline)
    SurrogateCell                    the surrogate inside a NEURON script     (neuron)
    finitialize                      h.finitialize, raising what a cell refused  (neuron)

Subpackages: detailed → stimuli → simulation → data → features → surrogate → training →
evaluation → neuron → integrations (NetPyNE). The flat module paths of 0.1
(``noble_neuron.surrogate_cell`` …) still import, with a DeprecationWarning (`_legacy`).
"""
from importlib import import_module

from . import _legacy
from ._version import __version__

_legacy.install()

_PUBLIC = {
    "CellSpec": "detailed.spec",
    "load_family": "detailed.pv_family",
    "generate": "simulation.datagen",
    "open_dataset": "data.dataset",
    "train": "training.train",
    "load_surrogate": "surrogate.checkpoint",
    "build_surrogate": "pipeline",
    "SurrogateCell": "neuron.cell",
    "finitialize": "neuron.engine",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    if _legacy.is_moved(name):  # `noble_neuron.netpyne.cell_rule(...)` after a plain `import noble_neuron`
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'noble_neuron' has no attribute {name!r}")
