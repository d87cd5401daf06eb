"""Electrophysiology from traces: spikes, FI curves, I_thr, s_thr, eFEL features, timing metrics.

The names of 0.1's flat ``noble_neuron.features`` module (``spike_times``, ``fi_curve``, …)
are still importable from here; they live in `spikes` and `ephys`.
"""
from importlib import import_module

_MOVED = {name: "spikes" for name in ("spike_times", "count_spikes")}
_MOVED["FeatureScaler"] = "scaler"
_MOVED.update({name: "ephys" for name in ("FICurve", "fi_curve", "threshold_current", "threshold_slope",
                                          "efel_features", "input_resistance_MOhm",
                                          "model_features")})


def __getattr__(name: str):
    if name in _MOVED:
        return getattr(import_module(f".{_MOVED[name]}", __name__), name)
    raise AttributeError(f"module 'noble_neuron.features' has no attribute {name!r}")
