"""Import paths of noble_neuron 0.1 (flat modules) that moved in 0.2, kept working.

``from noble_neuron.surrogate_cell import SurrogateCell`` still imports, with a
`DeprecationWarning` naming the new module; a name that no longer exists raises an
ImportError/AttributeError that says where to look (CHANGELOG.md lists every move).
`install` puts the finder on ``sys.meta_path`` (called once by ``noble_neuron/__init__``).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: old module (under noble_neuron.) → new modules searched for its names, in order
MOVED: dict[str, tuple[str, ...]] = {
    "cell_engine": ("neuron.engine", "stimuli.protocols"),
    "checkpoint": ("surrogate.checkpoint",),
    "datagen": ("simulation.datagen", "simulation.engines"),
    "dataset": ("data.dataset",),
    "embedding": ("surrogate.encoding",),
    "evaluate": ("evaluation.evaluate",),
    "feature_table": ("features.table",),
    "machine": ("evaluation.machine",),
    "mechanisms": ("detailed.mechanisms",),
    "netpyne": ("integrations.netpyne",),
    "network_engine": ("neuron.network",),
    "plots": ("evaluation.plots",),
    "protocols": ("stimuli.protocols", "stimuli.presets"),
    "rollout": ("training.rollout",),
    "simulate": ("simulation.simulate", "detailed.spec", "detailed.instantiate", "simulation.calibration"),
    "spike_head": ("surrogate.decoder", "features.spikes"),
    "spike_metrics": ("features.spike_metrics",),
    "surrogate_cell": ("neuron.cell",),
    "surrogate_model": ("surrogate.model", "surrogate.checkpoint"),
    "synaptic_drive": ("stimuli.synaptic_drive",),
    "train": ("training.train",),
}
#: old package → new package (its submodules moved with it)
MOVED_PACKAGES = {"models": "detailed.pv_family"}
#: every exception and warning class now lives here
ERRORS_MODULE = "noble_neuron.errors"


class _MovedModule(types.ModuleType):
    """Stands in for an old module: attribute lookups go to the modules its contents moved to."""

    def __init__(self, old: str, targets: tuple[str, ...]) -> None:
        super().__init__(old)
        self.__targets = targets

    def __getattr__(self, name: str):
        """The moved object; a removed name raises ImportError (``from old import name`` would turn an
        AttributeError into a bare "cannot import name" and lose where to look)."""
        if name.startswith("_"):
            raise AttributeError(name)
        for target in (*self.__targets, ERRORS_MODULE):
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise ImportError(
            f"{self.__name__}.{name} no longer exists: {self.__name__} moved to {', '.join(self.__targets)} "
            "in noble_neuron 0.2 and this name was removed or renamed (see CHANGELOG.md)")


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, targets: tuple[str, ...], package: bool) -> None:
        self.targets, self.package = targets, package

    def create_module(self, spec):
        module = _MovedModule(spec.name, self.targets)
        if self.package:
            module.__path__ = []  # submodules (noble_neuron.models.x) come through the finder too
        return module

    def exec_module(self, module) -> None:
        warnings.warn(f"{module.__name__} moved to {self.targets[0]} in noble_neuron 0.2; "
                      f"import from there (see CHANGELOG.md)", DeprecationWarning, stacklevel=2)


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        prefix = "noble_neuron."
        if not fullname.startswith(prefix):
            return None
        head, _, tail = fullname[len(prefix):].partition(".")
        if head in MOVED_PACKAGES:
            new = prefix + MOVED_PACKAGES[head] + (f".{tail}" if tail else "")
            return importlib.util.spec_from_loader(fullname, _MovedLoader((new,), package=not tail))
        if head in MOVED and not tail:
            return importlib.util.spec_from_loader(
                fullname, _MovedLoader(tuple(prefix + t for t in MOVED[head]), package=False))
        return None


def is_moved(name: str) -> bool:
    """True for an old top-level module name such as ``"surrogate_cell"``."""
    return name in MOVED or name in MOVED_PACKAGES


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
