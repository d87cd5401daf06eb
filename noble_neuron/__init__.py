"""noble_neuron: drop-in FNO surrogates of detailed NEURON cell models.

Heavy dependencies (NEURON, torch) are imported by the submodules that need them, so
`import noble_neuron` stays cheap.
"""
from ._version import __version__

__all__ = ["__version__"]
