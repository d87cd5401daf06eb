"""The surrogate: its network (`build_fno`) and `Surrogate`, the network with its valid domain.

`SurrogateConfig` (`noble_neuron.surrogate.config`) describes the network and its input/output
encoding; `build_fno` turns it into a 1-D ``neuralop.models.FNO`` (whole-trace models) or a
`noble_neuron.surrogate.streaming.CausalSpectralNet` (streaming network-mode models);
`Surrogate` bundles the network with everything needed to use it correctly (dt, trained
length, amplitude range, feature scaler, convex hull of the training features, training model
ids, metrics) and exposes ``Surrogate.predict(stimuli_nA, features, dt_ms) -> voltages_mV`` for
whole-trace models (event models decode through `noble_neuron.surrogate.event_model`).

Domain checks in ``predict``: wrong dt or non-finite inputs raise ValueError; a trace
length other than the trained one, amplitudes outside the training range and features
outside the convex hull of the training features (in scaled space) warn with
`DomainWarning` (``strict=True`` raises ValueError instead); non-finite network output
raises RuntimeError, so NaN is never returned.
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Sequence

import numpy as np
import torch

from .._version import __version__
from .config import SurrogateConfig, positive_float, positive_int
from .domain import FeatureDomain, refuse_absurd_current
from . import caveats
from .measured import measured_list
from .references import references_from_json
from .encoding import AMPLITUDE_THRESHOLD_NA, build_input, characteristic_amplitude, scale_amplitude
from .spectral import fast_fft_length
from ..features.scaler import FeatureScaler
from ..errors import DomainWarning, AccuracyWarning  # noqa: F401 (raised here, defined in errors)
from ..validation import is_real

__all__ = ["AccuracyWarning", "DomainWarning", "SurrogateConfig", "build_fno", "decode_voltage", "fast_fft_length",
           "count_parameters", "Surrogate", "default_device"]

log = logging.getLogger(__name__)

SURROGATE_FORMAT = "noble_neuron.surrogate"
CPU_CHUNK_TRACES = 16  # traces per forward pass on CPU (see Surrogate.predict)
UNITS = {"stimulus": "nA", "voltage": "mV", "time": "ms", "amplitude": "nA"}


def default_device() -> torch.device:
    """CUDA if available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_fno(config: SurrogateConfig) -> torch.nn.Module:
    """The network for `config`: a 1-D ``neuralop.models.FNO`` (C_in → 1 output channel, 2 for event
    models), or the causal spectral network of a streaming model.

    Without ``grid_channel`` the FNO has no positional embedding (neuraloperator's "grid" spans
    [0, 1] over whatever length it is given); time enters through the NeRF channels instead.
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
        out_channels=2 if config.is_event_model else 1,
        hidden_channels=config.hidden_channels,
        n_layers=config.n_layers,
        lifting_channel_ratio=config.lifting_channel_ratio,
        projection_channel_ratio=config.projection_channel_ratio,
        positional_embedding="grid" if config.grid_channel else None,
    )


def decode_voltage(model: torch.nn.Module, inp: torch.Tensor, config: "SurrogateConfig") -> torch.Tensor:
    """Run a whole-trace regression network on an encoded input (B, C, W) and return voltages (B, W) in mV."""
    width = inp.shape[-1]
    if config.pad_to_fast_length:
        inp = torch.nn.functional.pad(inp, (0, fast_fft_length(width) - width))
    return model(inp)[:, 0, :width] * config.v_scale_mV + config.v_offset_mV


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


class Surrogate(FeatureDomain):
    """An FNO surrogate plus the metadata that defines its valid domain.

    Parameters (units in names): ``dt_ms`` sampling step of the training traces;
    ``n_samples`` trained trace length; ``amp_range_nA`` (min, max) characteristic
    amplitude of the training stimuli; ``feature_scaler`` fit on training models;
    ``hull_points`` vertices (scaled feature space) of the convex hull of the training
    models' features (with reference neurons: theirs too, `FeatureDomain.set_hull`); ``train_model_ids``; ``model_features`` {model id: {"split": ...,
    feature name: raw value}} for every model of the training dataset (lets users ask for
    a neuron by id); ``stimulus_kinds`` protocol kinds of the training traces (e.g.
    ``("long_square",)``; empty = unknown); ``metrics`` (JSON-safe dict).
    Whole-trace surrogates (NOBLE) predict a trace of ``n_samples`` from t = 0 in one call
    (`predict`); streaming ones (``config.streaming``, `is_streaming`) run step by step in
    network mode: ``spike_logit_shift`` turns their weighted spike logits into a hazard and
    ``spike_refractory_samples`` is the training data's shortest interspike interval.
    Event and streaming surrogates carry ``ap_templates_mV`` {model id: action potential (mV)}
    from ``ap_pre_ms`` before the crossing to ``ap_post_ms`` after it; event models may carry
    ``backbones`` {model id: `noble_neuron.surrogate.backbone.ModelBackbone`}, each training model's
    own voltage below threshold and between spikes (checkpoints without them decode the network's
    interspike channel instead), and its own spike trains under its training steps, which answer a single
    step of a training model in place of the network's spike phase while ``use_own_step_trains`` is True;
    ``references`` {model id: `noble_neuron.surrogate.references.ReferenceNeuron`} add neurons whose trains only
    (not their voltage) feature-given cells may borrow.
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
        spike_logit_shift: float = 0.0,
        spike_refractory_samples: int | None = None,
        ap_templates_mV: dict | None = None,
        ap_post_ms: float | None = None,
        backbones: dict | None = None,
        references: dict | None = None,
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
        self.dt_ms = positive_float("dt_ms", dt_ms)
        self.n_samples = positive_int("n_samples", n_samples)
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
        self.ap_templates_mV: dict[str, tuple[float, ...]] = {}
        self.ap_post_ms = None
        if config.is_event_model or config.streaming:
            self._set_ap_templates(ap_templates_mV, ap_post_ms)
        self.backbones = {}
        self.set_backbones(backbones)
        self.references = references_from_json(references)  # {id: ReferenceNeuron}: trains beyond the training set
        self.use_own_step_trains = True
        if not math.isfinite(float(spike_logit_shift)):
            raise ValueError(f"spike_logit_shift must be finite, got {spike_logit_shift!r}")
        self.spike_logit_shift = float(spike_logit_shift)
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
        post = positive_float("ap_post_ms", post_ms)
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

    def set_backbones(self, backbones: dict | None) -> None:
        """Set {model id: `ModelBackbone` or its arrays} (checked: event models only, known models, same dt);
        None or {} removes them."""
        from .backbone import ModelBackbone

        if not backbones:
            self.backbones = {}
            return
        if not self.config.is_event_model:
            raise ValueError("only whole-trace event models (event_output='phase') have a physics backbone")
        out = {}
        for mid, bb in backbones.items():
            if str(mid) not in self.model_features:
                raise ValueError(f"backbones has model {mid!r}, which has no features in this checkpoint")
            bb = bb if isinstance(bb, ModelBackbone) else (ModelBackbone.from_json(bb) if "shapes" in bb else
                                                           ModelBackbone.from_arrays(bb))
            if abs(bb.dt_ms - self.dt_ms) > 1e-9:
                raise ValueError(f"the backbone of {mid!r} is at dt {bb.dt_ms} ms, the surrogate at {self.dt_ms} ms")
            out[str(mid)] = bb
        self.backbones = out

    def nearest_models(self, features: np.ndarray, ids: Sequence[str], k: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """(indices into `ids` (B, k), weights (B, k) summing to 1) of the k models nearest to raw features (B, F)
        in scaled feature space, inverse-square-distance weighted (a model's own point: itself, weight 1)."""
        from .decoder import nearest_weights

        pts = self.feature_scaler.transform(np.array([self.features_of(m) for m in ids]))
        return nearest_weights(self.feature_scaler.transform(np.asarray(features, dtype=float)), pts, k)

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
            "spike_logit_shift": self.spike_logit_shift,
            "spike_refractory_samples": self.spike_refractory_samples,
            "ap_templates_mV": {k: list(v) for k, v in self.ap_templates_mV.items()},
            "ap_post_ms": self.ap_post_ms,
            "backbones": {k: v.to_json() for k, v in sorted(self.backbones.items())},
            "references": {k: v.to_json() for k, v in sorted(self.references.items())},
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
            spike_logit_shift=meta.get("spike_logit_shift", 0.0),
            spike_refractory_samples=meta.get("spike_refractory_samples"),
            ap_templates_mV=meta.get("ap_templates_mV"), ap_post_ms=meta.get("ap_post_ms"),
            backbones=meta.get("backbones"), references=meta.get("references"),
            metrics=meta.get("metrics"),
            version=meta.get("noble_neuron_version", "unknown"), device=device,
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Weights only, as a plain dict of CPU tensors (neuraloperator's pickled ``_metadata`` dropped)."""
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items() if isinstance(v, torch.Tensor)}

    def closed_loop_caveat(self) -> str | None:
        """Why this network checkpoint's closed-loop accuracy is not validated, or None (`caveats.closed_loop`)."""
        return caveats.closed_loop(self)

    def whole_trace_caveat(self, own_step_trains: bool = True) -> str | None:
        """Why this whole-trace checkpoint's spikes should not be trusted, or None (`caveats.whole_trace`)."""
        return caveats.whole_trace(self, own_step_trains)

    @property
    def is_streaming(self) -> bool:
        """True for a streaming network model (``config.streaming``), the kind network mode runs."""
        return self.config.streaming

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
        measured: Sequence[Any] | None = None,
    ) -> np.ndarray:
        """Somatic voltages (mV) for injected currents: (B, L) float32, or (L,) for a 1-D stimulus.

        ``stimuli_nA``: (B, L) or (L,) current in nA sampled at ``dt_ms`` (must equal the
        trained dt). Any L is accepted (the FNO is length-agnostic) but an L other than
        the trained ``n_samples`` warns. ``features``: (B, F) or (F,) raw features in
        ``config.feature_names`` order and units (I_thr nA, s_thr Hz/nA), broadcast if
        (F,). ``device`` moves the model there for this and later calls (default: where
        it is). Batches of ``batch_size`` go through the network at once (default: 16 traces on CPU,
        where larger chunks fall out of cache (benchmarks/speedup.py), 1024 on CUDA). ``measured``: per
        item the neuron's measured FI curve ((amps nA, rates Hz), `FICurve`), recorded step trains
        (`measured.recorded_trains`), its own fitted responses (`measured.MeasuredCell`) or None (`measured`). ``check_domain=False`` skips the domain warnings (for
        callers such as the SurrogateCell engine that report per cell); dt, shape and NaN checks always
        run. Streaming surrogates run step by step instead (`noble_neuron.training.rollout.rollout`).
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
        batch_size = positive_int("batch_size", batch_size if batch_size is not None else
                              (1024 if dev.type == "cuda" else CPU_CHUNK_TRACES))

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
        refuse_absurd_current(x.abs().amax(dim=1).cpu().numpy(), self.amp_range_nA)

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

        amp = characteristic_amplitude(x).cpu().numpy().astype(np.float64)
        lo, hi = self.amp_range_nA
        if check_domain:
            self._domain(self.amplitude_in_range(amp),
                         f"have a characteristic amplitude outside the trained range [{lo:g}, {hi:g}] nA", strict)
            self._domain(self.in_hull(f), "have features outside the convex hull of the training population's features",
                         strict)

        c = self.config
        amp_scaled = scale_amplitude(amp, (lo, hi), (c.scaled_low, c.scaled_high))
        amp_t = torch.as_tensor(amp_scaled, dtype=torch.float32)
        feat_t = torch.as_tensor(self.feature_scaler.transform(f), dtype=torch.float32)
        if c.is_event_model:
            from .event_model import predict_events

            out = predict_events(self, x, amp_t, feat_t, f, batch_size, measured_list(measured, b))
            return out[0] if squeeze else out
        out = np.empty((b, length), dtype=np.float32)
        self.model.eval()
        with torch.inference_mode():
            for i in tqdm(range(0, b, batch_size), disable=not progress, desc="surrogate", unit="batch"):
                j = min(i + batch_size, b)
                inp = build_input(x[i:j].to(dev), amp_t[i:j].to(dev), feat_t[i:j].to(dev), n_ref=self.n_samples,
                                  k_amp=c.k_amp, k_feat=c.k_feat, current_scale_nA=c.current_scale_nA)
                v = decode_voltage(self.model, inp, c)
                if not bool(torch.isfinite(v).all()):
                    raise RuntimeError(
                        f"the network produced NaN/inf for items {i}..{j - 1}; the checkpoint may be corrupt or the "
                        "inputs far outside the training domain"
                    )
                out[i:j] = v.float().cpu().numpy()
        return out[0] if squeeze else out

    def __repr__(self) -> str:
        return (f"Surrogate({self.config.n_layers} layers × {self.config.hidden_channels} ch, "
                f"{self.config.n_modes} modes, dt={self.dt_ms} ms, L={self.n_samples}, device={self.device})")
