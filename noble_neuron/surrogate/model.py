"""The FNO surrogate: architecture config, the network, and the one batched ``predict``.

`SurrogateConfig` describes the network and its input/output encoding; `build_fno` turns
it into a 1-D ``neuralop.models.FNO``; `Surrogate` bundles the network with everything
needed to use it correctly (dt, trained length, amplitude range, feature scaler, convex
hull of the training features, training model ids, metrics) and exposes
``Surrogate.predict(stimuli_nA, features, dt_ms) -> voltages_mV``.

Encoding (see `noble_neuron.surrogate.encoding` for the channel order):

* input current is divided by ``current_scale_nA``;
* the characteristic amplitude (mean current where |I| > 1e-6 nA, 0 if the stimulus is
  all zero; the step amplitude for a Long Square) is min-max scaled from the training
  amplitude range to [0.5, 3.5] and NeRF-embedded with ``k_amp`` frequencies;
* each feature (``feature_names``, raw units) is min-max scaled by the training
  `FeatureScaler` to [0.5, 3.5] and embedded with ``k_feat`` frequencies;
* the network predicts ``v_norm = (v_mV - v_offset_mV) / v_scale_mV``.

Domain checks in ``predict``: wrong dt or non-finite inputs raise ValueError; a trace
length other than the trained one, amplitudes outside the training range and features
outside the convex hull of the training features (in scaled space) warn with
`DomainWarning` (``strict=True`` raises ValueError instead); non-finite network output
raises RuntimeError, so NaN is never returned.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .._version import __version__
from .encoding import AMPLITUDE_THRESHOLD_NA, build_input, characteristic_amplitude, n_input_channels, scale_amplitude
from ..config_io import checked_mapping, yaml_section
from ..features.ephys import FeatureScaler
from ..errors import DomainWarning, AccuracyWarning  # noqa: F401 (raised here, defined in errors)
from ..validation import is_int, is_real

__all__ = ["AccuracyWarning", "DomainWarning", "SurrogateConfig", "build_fno", "decode_voltage", "event_channels",
           "fast_fft_length", "count_parameters",
           "history_channels",
           "Surrogate", "default_device"]

log = logging.getLogger(__name__)

SURROGATE_FORMAT = "noble_neuron.surrogate"
CPU_CHUNK_TRACES = 16  # traces per forward pass on CPU (see Surrogate.predict)
CPU_CHUNK_WINDOWS = 128  # sliding-window models: windows per forward pass on CPU (1000 in one pass: 4x slower)
UNITS = {"stimulus": "nA", "voltage": "mV", "time": "ms", "amplitude": "nA"}


def default_device() -> torch.device:
    """CUDA if available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _pos_int(name: str, v: Any) -> int:
    if not is_int(v) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _pos_float(name: str, v: Any) -> float:
    if not is_real(v) or not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class SurrogateConfig:
    """FNO architecture and input/output encoding.

    ``n_modes`` is the neuraloperator convention: for the (real, 1-D) time axis the
    spectral convolution keeps ``n_modes // 2 + 1`` rfft modes.

    ``sliding_window``: a sliding-window (network-mode, causal) model: it sees windows cut
    anywhere from a run, each with its own time axis, zero-padded by a quarter on the right
    so the FFT's wrap-around does not join the newest samples to the oldest. Without
    ``voltage_history`` such a model maps the window's input current alone to its voltage
    (open loop: no feedback of its own output, so nothing to drift or run away).

    ``voltage_history``: two more input channels for sliding-window models (implies
    ``sliding_window``): the window's known voltage (normalised; the unknown last samples
    hold the last known value) and a mask (1 known, 0 to predict), see `history_channels`.

    ``spike_head``: an input-only sliding-window model with a second output, the logit of
    a spike at each sample; its voltage output is the voltage clipped at ``v_clip_mV``
    (see `noble_neuron.surrogate.spike_head`); its spike labels are 1 within ``spike_label_half_width``
    samples of each spike.

    ``event_output``: ``"none"`` regresses the voltage itself; ``"phase"`` makes a whole-trace
    event model (`noble_neuron.surrogate.decoder`): two outputs on a grid ``time_coarsening`` times
    coarser than the data, the spike phase θ (in units of ``phase_scale`` spikes) and the
    interspike voltage; `predict`
    composes the trace with each model's own action potential (``ap_pre_ms`` before the
    −20 mV crossing to the fast-AHP trough).

    ``streaming``: a streaming network-mode model (`noble_neuron.surrogate.streaming`): a causal spectral
    network (``state_modes`` complex recurrent modes per channel and layer) on a grid
    ``time_coarsening`` times coarser than the data, run as a recurrence in the engine, with
    its own spikes fed back; implies ``sliding_window`` and ``spike_head`` (clipped voltage
    at ``v_clip_mV`` + spike logit per step) and stores each model's action potential.

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
    voltage_history: bool = False
    sliding_window: bool = False
    spike_head: bool = False
    v_clip_mV: float = -55.0
    spike_label_half_width: int = 1
    event_output: str = "none"
    time_coarsening: int = 1
    phase_scale: float = 25.0
    ap_pre_ms: float = 0.36
    grid_channel: bool = False
    streaming: bool = False
    state_modes: int = 16

    def __post_init__(self) -> None:
        for name in ("n_layers", "hidden_channels", "n_modes", "time_coarsening", "state_modes"):
            object.__setattr__(self, name, _pos_int(name, getattr(self, name)))
        for name in ("k_amp", "k_feat", "spike_label_half_width"):
            v = getattr(self, name)
            if not is_int(v) or v < 0:
                raise ValueError(f"{name} (number of embedding frequencies) must be an integer >= 0, got {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("projection_channel_ratio", "lifting_channel_ratio", "current_scale_nA", "v_scale_mV",
                     "phase_scale", "ap_pre_ms"):
            object.__setattr__(self, name, _pos_float(name, getattr(self, name)))
        for name in ("v_offset_mV", "scaled_low", "scaled_high", "v_clip_mV"):
            v = getattr(self, name)
            if not is_real(v) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        for name in ("pad_to_fast_length", "voltage_history", "sliding_window", "spike_head", "grid_channel",
                     "streaming"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.streaming:
            if self.voltage_history:
                raise ValueError("a streaming model feeds back its spikes, not its voltage: set voltage_history: false")
            object.__setattr__(self, "sliding_window", True)
            object.__setattr__(self, "spike_head", True)
        if self.voltage_history:
            object.__setattr__(self, "sliding_window", True)
        if self.spike_head and (self.voltage_history or not self.sliding_window):
            raise ValueError("spike_head is for input-only sliding-window models: set sliding_window: true and "
                             "voltage_history: false")
        from .decoder import EVENT_OUTPUTS

        if self.event_output not in EVENT_OUTPUTS:
            raise ValueError(f"event_output must be one of {list(EVENT_OUTPUTS)}, got {self.event_output!r}")
        if self.is_event_model and self.sliding_window:
            raise ValueError("event_output is for whole-trace models (sliding-window models use spike_head)")
        if self.time_coarsening > 1 and not (self.is_event_model or self.streaming):
            raise ValueError("time_coarsening > 1 needs an event model (event_output 'phase'): "
                             "a regressed voltage cannot hold 0.3 ms action potentials on a coarser grid")
        if self.grid_channel and self.sliding_window:
            raise ValueError("grid_channel spans [0, 1] over each window: not for sliding-window models")
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
        extra = 2 if self.voltage_history else 0  # known voltage + its mask (sliding-window models)
        return n_input_channels(self.k_amp, self.k_feat, len(self.feature_names)) + extra

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


def build_fno(config: SurrogateConfig) -> torch.nn.Module:
    """A 1-D ``neuralop.models.FNO`` for `config` (C_in → 1 output channel).

    ``positional_embedding=None``: neuraloperator's "grid" embedding spans [0, 1] over
    whatever length it is given, so a training window and the full trace would see
    different positions; time enters through the NeRF channels instead.
    """
    if not isinstance(config, SurrogateConfig):
        raise TypeError(f"config must be a SurrogateConfig, got {type(config).__name__}")
    if config.streaming:
        from .streaming import CausalSpectralNet

        return CausalSpectralNet(config.in_channels, config.hidden_channels, config.n_layers, config.state_modes,
                                 int(round(config.hidden_channels * config.projection_channel_ratio)))
    from neuralop.models import FNO

    return FNO(
        n_modes=(config.n_modes,),
        in_channels=config.in_channels,
        out_channels=2 if (config.spike_head or config.is_event_model) else 1,
        hidden_channels=config.hidden_channels,
        n_layers=config.n_layers,
        lifting_channel_ratio=config.lifting_channel_ratio,
        projection_channel_ratio=config.projection_channel_ratio,
        positional_embedding="grid" if config.grid_channel else None,
    )


def fast_fft_length(n: int) -> int:
    """Smallest length >= n whose prime factors are 2, 3 and 5 (fast FFTs on CPU and CUDA)."""
    best = 2 * n
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def decode_voltage(model: torch.nn.Module, inp: torch.Tensor, config: "SurrogateConfig") -> torch.Tensor:
    """Run the network on an encoded input (B, C, W) and return voltages (B, W) in mV."""
    return decode_outputs(model, inp, config)[0]


def decode_outputs(model: torch.nn.Module, inp: torch.Tensor,
                   config: "SurrogateConfig") -> tuple[torch.Tensor, torch.Tensor | None]:
    """(voltages (B, W) in mV, spike logits (B, W) or None) of the network on an encoded input (B, C, W).

    Spike-head models' voltage is the voltage clipped at ``config.v_clip_mV``.

    Sliding-window models have their windows zero-padded by a quarter on the right so the
    FFT's periodic wrap-around does not join the predicted tail to the window's oldest
    samples; with ``voltage_history`` they predict a residual on the known voltage channel
    (whose unknown tail holds the last known value), so "nothing changes" is the zero function.
    """
    width = inp.shape[-1]
    if config.sliding_window:
        raw = model(torch.nn.functional.pad(inp, (0, fast_fft_length(width + width // 4) - width)))[:, :, :width]
        out = raw[:, 0]
        if config.voltage_history:
            out = out + inp[:, -2, :]
        return out * config.v_scale_mV + config.v_offset_mV, (raw[:, 1] if config.spike_head else None)
    if config.pad_to_fast_length:
        inp = torch.nn.functional.pad(inp, (0, fast_fft_length(width) - width))
    return model(inp)[:, 0, :width] * config.v_scale_mV + config.v_offset_mV, None


def event_channels(model: torch.nn.Module, inp: torch.Tensor,
                   config: "SurrogateConfig") -> tuple[torch.Tensor, torch.Tensor]:
    """(spike phase θ (B, Lc) in spikes, interspike voltage (B, Lc) in mV) of an event model on an encoded
    coarse-grid input (B, C, Lc)."""
    width = inp.shape[-1]
    if config.pad_to_fast_length:
        inp = torch.nn.functional.pad(inp, (0, fast_fft_length(width) - width))
    raw = model(inp)[:, :, :width]
    return raw[:, 0] * config.phase_scale, raw[:, 1] * config.v_scale_mV + config.v_offset_mV


def history_channels(v_mV: torch.Tensor, n_future: torch.Tensor, config: "SurrogateConfig") -> torch.Tensor:
    """(B, 2, W) voltage-history channels: normalised known voltage, then the known-mask.

    ``v_mV`` (B, W): voltage of the window; its last ``n_future[b]`` samples are unknown
    (ignored) and are filled with the last known value. ``n_future`` (B,) integers in [1, W).
    """
    b, w = v_mV.shape
    idx = torch.arange(w, device=v_mV.device)[None, :]
    last = (w - 1 - n_future.to(v_mV.device).long())[:, None]  # index of the last known sample
    known = idx <= last
    held = torch.gather(v_mV, 1, last)
    v = torch.where(known, v_mV, held)
    v_norm = (v.to(torch.float32) - config.v_offset_mV) / config.v_scale_mV
    return torch.stack([v_norm, known.to(torch.float32)], dim=1)


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable real parameters (a complex weight counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters() if p.requires_grad)


def _as_float_tensor(x: Any, name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if not (x.dtype.is_floating_point or x.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must be a real-valued tensor, got dtype {x.dtype}")
        return x.detach().to(dtype)
    try:
        arr = np.asarray(x, dtype=np.float32 if dtype == torch.float32 else np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array or tensor, got {type(x).__name__} ({exc})") from None
    return torch.from_numpy(np.ascontiguousarray(arr))


class Surrogate:
    """An FNO surrogate plus the metadata that defines its valid domain.

    Parameters (units in names): ``dt_ms`` sampling step of the training traces;
    ``n_samples`` trained trace length; ``amp_range_nA`` (min, max) characteristic
    amplitude of the training stimuli; ``feature_scaler`` fit on training models;
    ``hull_points`` vertices (scaled feature space) of the convex hull of the training
    models' features; ``train_model_ids``; ``model_features`` {model id: {"split": ...,
    feature name: raw value}} for every model of the training dataset (lets users ask for
    a neuron by id); ``stimulus_kinds`` protocol kinds of the training traces (e.g.
    ``("long_square",)``; empty = unknown); ``metrics`` (JSON-safe dict).
    ``sliding_horizon_samples``: None for a whole-trace surrogate (NOBLE: one call predicts
    a trace of ``n_samples`` from t = 0); an int H for a sliding-window (causal) surrogate
    for network mode (``config.sliding_window``): trained on windows of ``n_samples`` cut
    anywhere from fluctuating inputs, each with its own time axis, it predicts the last
    1..H samples of a window from the window's input current (and, with
    ``config.voltage_history``, the voltage before them).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: SurrogateConfig,
        *,
        dt_ms: float,
        n_samples: int,
        amp_range_nA: Sequence[float],
        feature_scaler: FeatureScaler,
        hull_points: Sequence[Sequence[float]],
        train_model_ids: Sequence[str] = (),
        model_features: dict | None = None,
        stimulus_kinds: Sequence[str] = (),
        metrics: dict | None = None,
        version: str = __version__,
        device: torch.device | str | None = None,
        sliding_horizon_samples: int | None = None,
        spike_template_mV: Sequence[float] | None = None,
        spike_threshold: float = 0.5,
        spike_logit_shift: float = 0.0,
        spike_delay_samples: int = 0,
        spike_refractory_samples: int | None = None,
        ap_templates_mV: dict | None = None,
        ap_post_ms: float | None = None,
    ) -> None:
        if not isinstance(config, SurrogateConfig):
            raise TypeError(f"config must be a SurrogateConfig, got {type(config).__name__}")
        if not isinstance(feature_scaler, FeatureScaler):
            raise TypeError(f"feature_scaler must be a FeatureScaler, got {type(feature_scaler).__name__}")
        if tuple(feature_scaler.names) != config.feature_names:
            raise ValueError(
                f"feature scaler names {list(feature_scaler.names)} differ from config.feature_names "
                f"{list(config.feature_names)}; fit the scaler on the configured features"
            )
        self.model = model
        self.config = config
        self.dt_ms = _pos_float("dt_ms", dt_ms)
        self.n_samples = _pos_int("n_samples", n_samples)
        lo, hi = (float(a) for a in amp_range_nA)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"amp_range_nA must be a finite (min, max) with max > min, got {amp_range_nA!r}")
        self.amp_range_nA = (lo, hi)
        self.feature_scaler = feature_scaler
        pts = np.asarray(hull_points, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != len(config.feature_names) or pts.shape[0] < 1 or not np.isfinite(pts).all():
            raise ValueError(f"hull_points must be finite (n_points, {len(config.feature_names)}), got shape {pts.shape}")
        self.hull_points = pts
        self.train_model_ids = tuple(str(m) for m in train_model_ids)
        self.model_features = {str(k): dict(v) for k, v in (model_features or {}).items()}
        self.stimulus_kinds = tuple(str(k) for k in stimulus_kinds)
        if sliding_horizon_samples is not None:
            b = sliding_horizon_samples
            if not is_int(b) or not 1 <= b < self.n_samples:
                raise ValueError(f"sliding_horizon_samples must be an integer in [1, {self.n_samples}), got {b!r}")
            if not config.sliding_window:
                raise ValueError("a sliding-window surrogate needs config.sliding_window=True")
            sliding_horizon_samples = int(b)
        self.sliding_horizon_samples = sliding_horizon_samples
        if config.spike_head:
            tmpl = np.asarray(spike_template_mV if spike_template_mV is not None else [], dtype=float)
            if tmpl.ndim != 1 or tmpl.size == 0 or not np.isfinite(tmpl).all():
                raise ValueError("a spike-head surrogate needs spike_template_mV: the average action potential (mV) "
                                 "from its spike-threshold crossing on (see noble_neuron.surrogate.spike_head.ap_template)")
            if not 0.0 < float(spike_threshold) < 1.0:
                raise ValueError(f"spike_threshold must be a probability in (0, 1), got {spike_threshold!r}")
        self.spike_template_mV = None if not config.spike_head else tuple(float(x) for x in tmpl)
        self.ap_templates_mV: dict[str, tuple[float, ...]] = {}
        self.ap_post_ms = None
        if config.is_event_model or config.streaming:
            self._set_ap_templates(ap_templates_mV, ap_post_ms)
        self.spike_threshold = float(spike_threshold)
        if not math.isfinite(float(spike_logit_shift)):
            raise ValueError(f"spike_logit_shift must be finite, got {spike_logit_shift!r}")
        self.spike_logit_shift = float(spike_logit_shift)
        self.spike_delay_samples = int(spike_delay_samples)
        self.spike_refractory_samples = None if spike_refractory_samples is None else int(spike_refractory_samples)
        self.metrics = dict(metrics or {})
        self.version = str(version)
        self._delaunay: Any = None
        self.to(default_device() if device is None else device)
        self.model.eval()

    def _set_ap_templates(self, templates: dict | None, post_ms: float | None) -> None:
        """Validate and keep an event model's per-model action potentials (mV, −pre … +post ms at dt)."""
        if not templates or post_ms is None:
            raise ValueError("an event surrogate needs ap_templates_mV ({model id: average action potential in mV}) "
                             "and ap_post_ms; train it with noble-neuron train (they come from the training traces)")
        post = _pos_float("ap_post_ms", post_ms)
        n = int(round(self.config.ap_pre_ms / self.dt_ms)) + int(round(post / self.dt_ms)) + 1
        clean = {}
        for mid, wave in templates.items():
            w = np.asarray(wave, dtype=float)
            if w.shape != (n,) or not np.isfinite(w).all():
                raise ValueError(f"ap_templates_mV[{mid!r}] must be {n} finite samples (mV), got shape {w.shape}")
            if str(mid) not in self.model_features:
                raise ValueError(f"ap_templates_mV has model {mid!r}, which has no features in this checkpoint")
            clean[str(mid)] = tuple(float(x) for x in w)
        self.ap_templates_mV, self.ap_post_ms = clean, post

    def templates_for(self, features: np.ndarray) -> np.ndarray:
        """(B, n) action potentials (mV) for raw features (B, F): a training model's own for its features,
        otherwise an inverse-distance blend of the 3 nearest training models' (scaled feature space)."""
        from .decoder import blend_templates

        ids = sorted(self.ap_templates_mV)
        pts = self.feature_scaler.transform(np.array([self.features_of(m) for m in ids]))
        waves = np.array([self.ap_templates_mV[m] for m in ids])
        return blend_templates(self.feature_scaler.transform(np.asarray(features, dtype=float)), pts, waves)

    # ------------------------------------------------------------------ device
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> "Surrogate":
        self.model.to(torch.device(device))
        return self

    # ------------------------------------------------------------------ metadata
    def metadata(self) -> dict:
        """JSON-safe description of everything except the weights."""
        c = self.config
        channels = ["stimulus_nA/current_scale_nA"]
        channels += [f"amp_{fn}_k{k}" for fn in ("sin", "cos") for k in range(c.k_amp)]
        channels += [f"{name}_{fn}_k{k}" for name in c.feature_names for fn in ("sin", "cos") for k in range(c.k_feat)]
        return {
            "format": SURROGATE_FORMAT,
            "config": c.to_dict(),
            "dt_ms": self.dt_ms,
            "n_samples": self.n_samples,
            "units": dict(UNITS),
            "amp_range_nA": list(self.amp_range_nA),
            "amplitude_definition": f"mean current where |I| > {AMPLITUDE_THRESHOLD_NA:g} nA; 0 if none",
            "input_channels": channels,
            "feature_scaler": self.feature_scaler.to_dict(),
            "hull_points_scaled": self.hull_points.tolist(),
            "train_model_ids": list(self.train_model_ids),
            "model_features": self.model_features,
            "stimulus_kinds": list(self.stimulus_kinds),
            "sliding_horizon_samples": self.sliding_horizon_samples,
            "spike_template_mV": None if self.spike_template_mV is None else list(self.spike_template_mV),
            "spike_threshold": self.spike_threshold,
            "spike_logit_shift": self.spike_logit_shift,
            "spike_delay_samples": self.spike_delay_samples,
            "spike_refractory_samples": self.spike_refractory_samples,
            "ap_templates_mV": {k: list(v) for k, v in self.ap_templates_mV.items()},
            "ap_post_ms": self.ap_post_ms,
            "metrics": self.metrics,
            "noble_neuron_version": self.version,
            "n_parameters": count_parameters(self.model),
        }

    @classmethod
    def from_metadata(cls, meta: dict, state_dict: dict | None = None, device=None) -> "Surrogate":
        """Rebuild from `metadata()` (and weights, if given)."""
        config = SurrogateConfig.from_dict(meta["config"])
        model = build_fno(config)
        if state_dict is not None:
            model.load_state_dict(dict(state_dict))
        return cls(
            model, config, dt_ms=meta["dt_ms"], n_samples=meta["n_samples"], amp_range_nA=meta["amp_range_nA"],
            feature_scaler=FeatureScaler.from_dict(meta["feature_scaler"]), hull_points=meta["hull_points_scaled"],
            train_model_ids=meta.get("train_model_ids", ()), model_features=meta.get("model_features"),
            stimulus_kinds=meta.get("stimulus_kinds", ()),
            sliding_horizon_samples=meta.get("sliding_horizon_samples"),
            spike_template_mV=meta.get("spike_template_mV"), spike_threshold=meta.get("spike_threshold", 0.5),
            spike_logit_shift=meta.get("spike_logit_shift", 0.0),
            spike_delay_samples=meta.get("spike_delay_samples", 0),
            spike_refractory_samples=meta.get("spike_refractory_samples"),
            ap_templates_mV=meta.get("ap_templates_mV"), ap_post_ms=meta.get("ap_post_ms"),
            metrics=meta.get("metrics"),
            version=meta.get("noble_neuron_version", "unknown"), device=device,
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Weights only, as a plain dict of CPU tensors (neuraloperator's pickled ``_metadata`` dropped)."""
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items() if isinstance(v, torch.Tensor)}


    # ------------------------------------------------------------------ domain
    def in_hull(self, features: np.ndarray) -> np.ndarray:
        """(B,) bool: raw features (B, F) inside the convex hull of the training features.

        Tested in scaled space with a Delaunay triangulation of the hull vertices. If
        the training features do not span F dimensions (too few or collinear models),
        falls back to their bounding box.
        """
        x = self.feature_scaler.transform(np.asarray(features, dtype=float))
        tol = 1e-6 * (self.config.scaled_high - self.config.scaled_low)  # absorbs float32 rounding of inputs
        if self._delaunay is None:
            self._delaunay = False
            if self.hull_points.shape[0] > self.hull_points.shape[1]:
                from scipy.spatial import Delaunay, QhullError

                try:
                    self._delaunay = Delaunay(self.hull_points)
                except QhullError:
                    log.info("training features are degenerate (not full-dimensional); hull test uses their bounding box")
        if self._delaunay is False:
            lo, hi = self.hull_points.min(axis=0) - tol, self.hull_points.max(axis=0) + tol
            return np.all((x >= lo) & (x <= hi), axis=-1)
        return self._delaunay.find_simplex(x, tol=tol) >= 0

    def features_of(self, model_id: str) -> np.ndarray:
        """Raw features (F,) of a model of the training dataset, in ``config.feature_names`` order."""
        if model_id not in self.model_features:
            known = sorted(self.model_features)
            hint = (f"known ids: {known[:3]} … {known[-3:]}" if known else
                    "this checkpoint stores no per-model features; pass the features explicitly")
            raise KeyError(f"model {model_id!r} is not in this surrogate's training dataset; {hint}")
        entry = self.model_features[model_id]
        return np.array([entry[n] for n in self.config.feature_names], dtype=float)

    def sample_features(self, n: int, seed: int = 0) -> np.ndarray:
        """(n, F) raw feature vectors drawn uniformly inside the convex hull of the training features.

        Rejection sampling in scaled space (NOBLE's "latent sampling" of new neurons);
        the same seed gives the same points.
        """
        n = _pos_int("n", n)
        rng = np.random.default_rng(seed)
        lo, hi = self.hull_points.min(axis=0), self.hull_points.max(axis=0)
        out: list[np.ndarray] = []
        while sum(len(o) for o in out) < n:
            raw = self.feature_scaler.inverse_transform(rng.uniform(lo, hi, size=(4 * n, lo.size)))
            out.append(raw[self.in_hull(raw)])
        return np.concatenate(out)[:n]

    def closed_loop_caveat(self) -> str | None:
        """Why this sliding-window checkpoint's closed-loop accuracy is not validated, or None if it is.

        Reads ``metrics["closed_loop"]`` (written by benchmarks/network.py --record): the
        checkpoint counts as validated when that run met its targets (population rate within
        10 %, median coincidence Gamma >= 0.9)."""
        if not self.is_sliding:
            return None
        cl = self.metrics.get("closed_loop")
        if not cl:
            return "its closed-loop accuracy in a network has not been measured"
        if cl.get("population_rate_rel_diff", 1.0) <= 0.1 and cl.get("gamma_2ms_median", 0.0) >= 0.9:
            return None
        return (f"measured closed loop against the detailed twins ({cl.get('n_cells')} cells, synaptic drive): "
                f"firing rate {cl.get('rate_Hz_surrogate_mean', float('nan')):.1f} Hz vs "
                f"{cl.get('rate_Hz_detailed_mean', float('nan')):.1f} Hz detailed, spike coincidence Gamma "
                f"{cl.get('gamma_2ms_median', float('nan')):.2f}, subthreshold RMSE "
                f"{cl.get('subthreshold_rmse_mV_median', float('nan')):.1f} mV")

    def whole_trace_caveat(self) -> str | None:
        """Why this whole-trace checkpoint's spikes should not be trusted, from its own recorded evaluation
        (``metrics["evaluation"]``, written by ``noble-neuron evaluate --record``), or None (also when it was
        never evaluated). Flagged: spike-count error on firing traces above 10 %, firing mismatches above
        5 % or relative L2 above 15 % on held-out amplitudes of its training models."""
        ev = self.metrics.get("evaluation")
        if self.is_sliding or not ev:
            return None
        count = ev.get("spike_count_rel_error_firing_in_distribution")
        mismatch = ev.get("firing_mismatch_rate_in_distribution")
        rel = ev.get("rel_l2_in_distribution")
        bad = ((count is not None and count > 0.10) or (mismatch is not None and mismatch > 0.05)
               or (rel is not None and rel > 0.15))
        if not bad:
            return None
        parts = [f"{what} {100 * value:.0f} %" for what, value in (
            ("spike counts off by", count), ("firing mismatches", mismatch), ("relative L2", rel)) if value is not None]
        return "measured on held-out step amplitudes of its training models: " + ", ".join(parts)

    def spike_composer(self, n_cells: int, threshold: float | None = None, delay_samples: int | None = None):
        """A fresh `SpikeComposer` with this spike-head checkpoint's template and refractory period, and its
        threshold and delay unless given (calibration tries others)."""
        from .spike_head import SpikeComposer

        return SpikeComposer(n_cells, np.array(self.spike_template_mV),
                             self.spike_threshold if threshold is None else threshold, self.dt_ms,
                             self.spike_delay_samples if delay_samples is None else delay_samples,
                             self.spike_refractory_samples)

    @property
    def is_sliding(self) -> bool:
        """True for a sliding-window (causal) surrogate, the kind network mode needs."""
        return self.sliding_horizon_samples is not None

    @property
    def steps_only(self) -> bool:
        """True when the training stimuli were all Long Square steps (other waveforms extrapolate)."""
        return self.stimulus_kinds == ("long_square",)

    def amplitude_in_range(self, amp_nA: np.ndarray) -> np.ndarray:
        """(B,) bool: characteristic amplitudes (nA) inside the trained range (1e-6 relative tolerance)."""
        lo, hi = self.amp_range_nA
        tol = 1e-6 * (hi - lo)
        amp = np.asarray(amp_nA, dtype=float)
        return (amp >= lo - tol) & (amp <= hi + tol)

    def _domain(self, ok: np.ndarray, msg: str, strict: bool) -> None:
        if ok.all():
            return
        bad = np.flatnonzero(~ok)
        text = f"{bad.size} of {ok.size} item(s) (e.g. index {bad[:5].tolist()}) {msg}"
        if strict:
            raise ValueError(text + "; pass strict=False to predict anyway (with a DomainWarning)")
        warnings.warn(text + "; the surrogate extrapolates there", DomainWarning, stacklevel=3)

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        stimuli_nA: np.ndarray | torch.Tensor,
        features: np.ndarray | torch.Tensor | Sequence[float],
        dt_ms: float,
        *,
        batch_size: int | None = None,
        device: torch.device | str | None = None,
        strict: bool = False,
        check_domain: bool = True,
        progress: bool = False,
        voltage_history_mV: np.ndarray | torch.Tensor | None = None,
        n_future: int | None = None,
        spike_parts: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Somatic voltages (mV) for injected currents: (B, L) float32, or (L,) for a 1-D stimulus.

        ``stimuli_nA``: (B, L) or (L,) current in nA sampled at ``dt_ms`` (must equal the
        trained dt). Any L is accepted (the FNO is length-agnostic) but an L other than
        the trained ``n_samples`` warns. ``features``: (B, F) or (F,) raw features in
        ``config.feature_names`` order and units (I_thr nA, s_thr Hz/nA), broadcast if
        (F,). ``device`` moves the model there for this and later calls (default: where
        it is). Batches of ``batch_size`` go through the network at once (default: 16 traces
        on CPU, where larger chunks fall out of cache and run ~2x slower per trace on 2
        cores (benchmarks/speedup.py), and 1024 on CUDA).
        ``check_domain=False`` skips the domain warnings (for callers such as the
        SurrogateCell engine that check and report per cell themselves); dt, shape and
        NaN checks always run.

        Sliding-window surrogates (`is_sliding`) predict windows ending now: the caller
        uses the last ``n_future`` samples (1 .. ``sliding_horizon_samples``). Those with
        ``config.voltage_history`` also need ``voltage_history_mV`` (B, L), the voltage of
        the window, of which the last ``n_future`` samples are predicted (their values are
        ignored); input-only ones refuse it.

        Spike-head surrogates (``config.spike_head``) return each window's clipped voltage with
        the action potentials its spike probability places (`noble_neuron.surrogate.spike_head`);
        ``spike_parts=True`` returns (clipped voltage, spike probability), both (B, L), for
        callers that compose spikes across windows themselves.
        """
        from tqdm import tqdm

        if self.config.streaming:
            raise ValueError("a streaming surrogate runs step by step with its own spikes fed back: use "
                             "noble_neuron.training.rollout.rollout(surrogate, currents, features) or SurrogateCell(network=True)")
        if not is_real(dt_ms):
            raise TypeError(f"dt_ms must be a number (ms), got {type(dt_ms).__name__}")
        if not abs(float(dt_ms) - self.dt_ms) <= 1e-9:
            raise ValueError(
                f"dt_ms={float(dt_ms)!r} differs from the trained dt_ms={self.dt_ms!r}; resample the stimulus "
                f"to {self.dt_ms} ms (the surrogate's time axis is tied to its training dt)"
            )
        if device is not None:
            self.to(device)
        dev = self.device
        cpu_chunk = CPU_CHUNK_WINDOWS if self.is_sliding else CPU_CHUNK_TRACES
        batch_size = _pos_int("batch_size", batch_size if batch_size is not None else
                              (1024 if dev.type == "cuda" else cpu_chunk))

        x = _as_float_tensor(stimuli_nA, "stimuli_nA")
        squeeze = x.ndim == 1
        if squeeze:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] < 2:
            raise ValueError(f"stimuli_nA must be (B, L) or (L,) with L >= 2, got shape {tuple(x.shape)}")
        b, length = x.shape
        finite = torch.isfinite(x).all(dim=1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten()[:5].tolist()
            raise ValueError(f"stimuli_nA contains NaN/inf (rows {bad}); pass finite currents in nA")

        n_feat = len(self.config.feature_names)
        # float64: features sit on the hull's vertices, where float32 rounding would flip the test
        f = _as_float_tensor(features, "features", torch.float64).cpu().numpy()
        if f.ndim == 1:
            f = np.broadcast_to(f, (b, f.shape[0]))
        if f.shape != (b, n_feat):
            raise ValueError(
                f"features must be ({b}, {n_feat}) or ({n_feat},) in the order {list(self.config.feature_names)}, "
                f"got shape {f.shape}"
            )
        if not np.isfinite(f).all():
            raise ValueError("features contain NaN/inf; pass finite I_thr (nA) and s_thr (Hz/nA)")

        if length != self.n_samples and check_domain:
            msg = (f"trace length {length} differs from the trained length {self.n_samples} samples "
                   f"({self.n_samples * self.dt_ms:g} ms)")
            if strict:
                raise ValueError(msg + "; pass strict=False to predict anyway")
            warnings.warn(msg + "; accuracy away from the trained window is untested", DomainWarning, stacklevel=2)

        hist = None
        c_spike = self.config.spike_head
        if self.is_sliding and n_future is not None and (
                not is_int(n_future) or not (
                1 <= n_future <= self.sliding_horizon_samples)):
            raise ValueError(f"n_future must be an integer in [1, {self.sliding_horizon_samples}] (the trained "
                             f"horizon), got {n_future!r}")
        if self.is_sliding and not self.config.voltage_history:
            if voltage_history_mV is not None:
                raise ValueError("this sliding-window surrogate is input-only (no voltage_history channels): "
                                 "do not pass voltage_history_mV")
        elif self.is_sliding:
            if voltage_history_mV is None or n_future is None:
                raise ValueError("this is a sliding-window (network-mode) surrogate: pass voltage_history_mV (B, L) "
                                 "and n_future (samples to predict at the end of the window)")
            hist = _as_float_tensor(voltage_history_mV, "voltage_history_mV")
            if hist.ndim == 1:
                hist = hist[None, :]
            if tuple(hist.shape) != (b, length):
                raise ValueError(f"voltage_history_mV must have the stimuli's shape {(b, length)}, got {tuple(hist.shape)}")
            if not bool(torch.isfinite(hist[:, :length - n_future]).all()):
                raise ValueError("voltage_history_mV contains NaN/inf in its known part")
        elif voltage_history_mV is not None:
            raise ValueError("voltage_history_mV is only for sliding-window surrogates; this one predicts whole traces")
        if spike_parts and not c_spike:
            raise ValueError("spike_parts=True is for spike-head surrogates (config.spike_head); this one regresses "
                             "the voltage directly")

        amp = characteristic_amplitude(x).cpu().numpy().astype(np.float64)
        lo, hi = self.amp_range_nA
        if check_domain:
            self._domain(self.amplitude_in_range(amp),
                         f"have a characteristic amplitude outside the trained range [{lo:g}, {hi:g}] nA", strict)
            self._domain(self.in_hull(f), "have features outside the convex hull of the training models' features",
                         strict)

        c = self.config
        amp_scaled = scale_amplitude(amp, (lo, hi), (c.scaled_low, c.scaled_high))
        amp_t = torch.as_tensor(amp_scaled, dtype=torch.float32)
        feat_t = torch.as_tensor(self.feature_scaler.transform(f), dtype=torch.float32)
        if c.is_event_model:
            return self._predict_events(x, amp_t, feat_t, f, batch_size, progress, squeeze)
        out = np.empty((b, length), dtype=np.float32)
        prob = np.empty((b, length), dtype=np.float32) if c_spike else None
        self.model.eval()
        with torch.inference_mode():
            for i in tqdm(range(0, b, batch_size), disable=not progress, desc="surrogate", unit="batch"):
                j = min(i + batch_size, b)
                inp = build_input(x[i:j].to(dev), amp_t[i:j].to(dev), feat_t[i:j].to(dev), n_ref=self.n_samples,
                                  k_amp=c.k_amp, k_feat=c.k_feat, current_scale_nA=c.current_scale_nA)
                if hist is not None:
                    fut = torch.full((j - i,), int(n_future), dtype=torch.long)
                    inp = torch.cat([inp, history_channels(hist[i:j].to(dev), fut, c)], dim=1)
                v, logit = decode_outputs(self.model, inp, c)
                if logit is not None:
                    prob[i:j] = torch.sigmoid(logit).float().cpu().numpy()
                if not bool(torch.isfinite(v).all()):
                    raise RuntimeError(
                        f"the network produced NaN/inf for items {i}..{j - 1}; the checkpoint may be corrupt or the "
                        "inputs far outside the training domain"
                    )
                out[i:j] = v.float().cpu().numpy()
        if c_spike and spike_parts:
            return (out[0], prob[0]) if squeeze else (out, prob)
        if c_spike:
            out = self.spike_composer(b).step(out, prob)
        return out[0] if squeeze else out

    def event_outputs(self, x: torch.Tensor, amp_t: torch.Tensor, feat_t: torch.Tensor,
                      batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """An event model's raw outputs on its coarse grid: (event channel (B, Lc), interspike voltage (B, Lc) mV)
        for currents x (B, L) nA at the data dt and scaled amplitudes/features."""
        from .decoder import coarsen

        c, dev = self.config, self.device
        xc = torch.from_numpy(coarsen(x.cpu().numpy(), c.time_coarsening).astype(np.float32))
        n_ref = -(-self.n_samples // c.time_coarsening)
        ev, vb = [], []
        self.model.eval()
        with torch.inference_mode():
            for i in range(0, xc.shape[0], batch_size):
                j = min(i + batch_size, xc.shape[0])
                inp = build_input(xc[i:j].to(dev), amp_t[i:j].to(dev), feat_t[i:j].to(dev), n_ref=n_ref,
                                  k_amp=c.k_amp, k_feat=c.k_feat, current_scale_nA=c.current_scale_nA)
                e, v = event_channels(self.model, inp, c)
                if not (bool(torch.isfinite(e).all()) and bool(torch.isfinite(v).all())):
                    raise RuntimeError(f"the network produced NaN/inf for items {i}..{j - 1}; the checkpoint may be "
                                       "corrupt or the inputs far outside the training domain")
                ev.append(e.float().cpu().numpy())
                vb.append(v.float().cpu().numpy())
        return np.concatenate(ev), np.concatenate(vb)

    def spike_times_from_events(self, event: np.ndarray, onset_ms: np.ndarray) -> list[np.ndarray]:
        """Spike times (ms) per item decoded from an event model's spike phase (B, Lc); θ is held at 0 before
        each item's input onset `onset_ms` (B,) (a cell at rest without input does not fire; the network's
        output near the trace edges is least reliable there)."""
        from .decoder import coarse_times_ms, spikes_from_phase

        tc = coarse_times_ms(event.shape[1], self.dt_ms, self.config.time_coarsening)
        return [spikes_from_phase(np.where(tc < o, 0.0, e), tc) for e, o in zip(event, onset_ms)]

    def _predict_events(self, x, amp_t, feat_t, features_raw, batch_size, progress, squeeze):
        from .decoder import compose_traces

        event, v_between = self.event_outputs(x, amp_t, feat_t, batch_size)
        on = (x.abs() > AMPLITUDE_THRESHOLD_NA).cpu().numpy()
        onset = np.where(on.any(axis=1), on.argmax(axis=1) * self.dt_ms, np.inf)
        spikes = self.spike_times_from_events(event, onset)
        out = compose_traces(v_between, spikes, self.templates_for(features_raw), self.config.ap_pre_ms,
                             self.dt_ms, self.config.time_coarsening, x.shape[1])
        return out[0] if squeeze else out

    def __repr__(self) -> str:
        return (f"Surrogate({self.config.n_layers} layers × {self.config.hidden_channels} ch, "
                f"{self.config.n_modes} modes, dt={self.dt_ms} ms, L={self.n_samples}, device={self.device})")
