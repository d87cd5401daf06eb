"""noble_neuron: drop-in FNO surrogates of detailed NEURON cell models."""
from ._version import __version__

__all__ = ["__version__"]
