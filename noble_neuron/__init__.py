"""noble_neuron: drop-in FNO surrogates of detailed NEURON cell models.

Heavy dependencies (NEURON, torch) are imported by the submodules that need them, so
`import noble_neuron` stays cheap; ``noble_neuron.SurrogateCell`` is imported on first use.
"""
from ._version import __version__

__all__ = ["__version__", "SurrogateCell"]


def __getattr__(name: str):
    if name == "SurrogateCell":
        from .surrogate_cell import SurrogateCell

        return SurrogateCell
    if name in ("netpyne", "models"):  # `noble_neuron.netpyne.cell_rule(...)` after a plain `import noble_neuron`
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'noble_neuron' has no attribute {name!r}")
