"""`SurrogateConfig`: a surrogate's network architecture and its input/output encoding.

Encoding of whole-trace models (see `noble_neuron.surrogate.encoding` for the channel order):

* input current is divided by ``current_scale_nA``;
* the characteristic amplitude (mean current where |I| > 1e-6 nA, 0 if the stimulus is
  all zero; the step amplitude for a Long Square) is min-max scaled from the training
  amplitude range to [0.5, 3.5] and NeRF-embedded with ``k_amp`` frequencies;
* each feature (``feature_names``, raw units) is min-max scaled by the training
  `FeatureScaler` to [0.5, 3.5] and embedded with ``k_feat`` frequencies;
* the network predicts ``v_norm = (v_mV - v_offset_mV) / v_scale_mV``.

Streaming models see, per model step, the mean current, their own previous spike and the
scaled features (`noble_neuron.surrogate.streaming`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .encoding import n_input_channels
from ..config_io import checked_mapping, yaml_section
from ..validation import is_int, is_real

__all__ = ["SurrogateConfig", "positive_float", "positive_int"]


def positive_int(name: str, v: Any) -> int:
    """`v` as an int, or ValueError naming `name` unless it is an integer >= 1."""
    if not is_int(v) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def positive_float(name: str, v: Any) -> float:
    """`v` as a float, or ValueError naming `name` unless it is a finite number > 0."""
    if not is_real(v) or not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class SurrogateConfig:
    """Network architecture and input/output encoding of a surrogate (see the module docstring).

    ``n_modes`` is the neuraloperator convention: for the (real, 1-D) time axis the
    spectral convolution keeps ``n_modes // 2 + 1`` rfft modes.

    ``event_output``: ``"none"`` regresses the voltage itself; ``"phase"`` makes a whole-trace
    event model (`noble_neuron.surrogate.decoder`): two outputs on a grid ``time_coarsening`` times
    coarser than the data, the spike phase θ (in units of ``phase_scale`` spikes) and the
    interspike voltage; `predict`
    composes the trace with each model's own action potential (``ap_pre_ms`` before the
    −20 mV crossing to the fast-AHP trough).

    ``streaming``: a streaming network-mode model (`noble_neuron.surrogate.streaming`): a causal spectral
    network (``state_modes`` complex recurrent modes per channel and layer) on a grid
    ``time_coarsening`` times coarser than the data, run as a recurrence in the engine, with
    its own spikes fed back; two outputs per step (the voltage clipped at ``v_clip_mV`` and a
    spike logit); it stores each model's action potential.

    ``grid_channel``: neuraloperator's positional "grid" channel (NOBLE's setting; whole-trace
    models only: it spans [0, 1] over whatever length it is given).

    ``pad_to_fast_length``: zero-pad the time axis to the next 2^a·3^b·5^c length before the
    FNO and crop after it. 8583 = 3 · 2861 (a prime) makes every FFT ~6x slower than at 8640;
    the padding changes what each Fourier mode means, so it is part of the trained model
    (off for checkpoints trained without it).
    """

    n_layers: int = 4
    hidden_channels: int = 24
    n_modes: int = 128
    projection_channel_ratio: float = 4.0
    lifting_channel_ratio: float = 2.0
    k_amp: int = 9
    k_feat: int = 1
    feature_names: tuple[str, ...] = ("I_thr_nA", "s_thr_Hz_per_nA")
    current_scale_nA: float = 0.3
    v_offset_mV: float = -65.0
    v_scale_mV: float = 40.0
    scaled_low: float = 0.5
    scaled_high: float = 3.5
    pad_to_fast_length: bool = False
    v_clip_mV: float = -55.0
    event_output: str = "none"
    time_coarsening: int = 1
    phase_scale: float = 25.0
    ap_pre_ms: float = 0.36
    grid_channel: bool = False
    streaming: bool = False
    state_modes: int = 16

    def __post_init__(self) -> None:
        for name in ("n_layers", "hidden_channels", "n_modes", "time_coarsening", "state_modes"):
            object.__setattr__(self, name, positive_int(name, getattr(self, name)))
        for name in ("k_amp", "k_feat"):
            v = getattr(self, name)
            if not is_int(v) or v < 0:
                raise ValueError(f"{name} (number of embedding frequencies) must be an integer >= 0, got {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("projection_channel_ratio", "lifting_channel_ratio", "current_scale_nA", "v_scale_mV",
                     "phase_scale", "ap_pre_ms"):
            object.__setattr__(self, name, positive_float(name, getattr(self, name)))
        for name in ("v_offset_mV", "scaled_low", "scaled_high", "v_clip_mV"):
            v = getattr(self, name)
            if not is_real(v) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        for name in ("pad_to_fast_length", "grid_channel", "streaming"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        from .decoder import EVENT_OUTPUTS

        if self.event_output not in EVENT_OUTPUTS:
            raise ValueError(f"event_output must be one of {list(EVENT_OUTPUTS)}, got {self.event_output!r}")
        if self.is_event_model and self.streaming:
            raise ValueError("event_output is for whole-trace models (a streaming model has its own spike output)")
        if self.time_coarsening > 1 and not (self.is_event_model or self.streaming):
            raise ValueError("time_coarsening > 1 needs an event model (event_output 'phase'): "
                             "a regressed voltage cannot hold 0.3 ms action potentials on a coarser grid")
        if self.grid_channel and self.streaming:
            raise ValueError("grid_channel spans [0, 1] over a whole trace: not for streaming models")
        if not self.scaled_high > self.scaled_low:
            raise ValueError(f"need scaled_low < scaled_high, got {self.scaled_low} and {self.scaled_high}")
        names = self.feature_names
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            raise TypeError(f"feature_names must be a sequence of non-empty strings, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"feature_names must be unique, got {list(names)}")
        object.__setattr__(self, "feature_names", tuple(names))

    @property
    def is_event_model(self) -> bool:
        """True for a whole-trace event model (spike phase + interspike voltage)."""
        return self.event_output != "none"

    @property
    def in_channels(self) -> int:
        if self.streaming:
            from .streaming import streaming_in_channels

            return streaming_in_channels(len(self.feature_names))
        return n_input_channels(self.k_amp, self.k_feat, len(self.feature_names))

    @classmethod
    def paper(cls, **overrides: Any) -> "SurrogateConfig":
        """NOBLE's architecture: 12 layers, 24 hidden channels, 256 modes, projection ratio 4 (~1.8 M params)."""
        return cls(**{"n_layers": 12, "hidden_channels": 24, "n_modes": 256, "projection_channel_ratio": 4.0, **overrides})

    @classmethod
    def cpu_small(cls, **overrides: Any) -> "SurrogateConfig":
        """A CPU-friendly model: 4 layers, 24 hidden channels, 128 modes (~0.2 M params)."""
        return cls(**{"n_layers": 4, "hidden_channels": 24, "n_modes": 128, "projection_channel_ratio": 4.0, **overrides})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["feature_names"] = list(self.feature_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SurrogateConfig":
        """Inverse of `to_dict`; unknown keys are rejected. ``preset: paper|cpu_small`` sets the base."""
        d = checked_mapping(cls, d, extra_keys=("preset",))
        preset = d.pop("preset", None)
        if "feature_names" in d:
            d["feature_names"] = tuple(d["feature_names"])
        if preset is None:
            return cls(**d)
        presets = {"paper": cls.paper, "cpu_small": cls.cpu_small}
        if preset not in presets:
            raise ValueError(f"unknown preset {preset!r}; use one of {sorted(presets)}")
        return presets[preset](**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SurrogateConfig":
        """Load from a YAML mapping (the ``model:`` section of a training config file, if present)."""
        return cls.from_dict(yaml_section(path, "model"))
