"""NeRF-style frequency-scaled embeddings: the FNO's input channels (NOBLE, arXiv 2506.04536).

A scalar ``p`` (a scaled amplitude or feature) is lifted to ``2K`` functions of time::

    sin(2^k · π · p · t), k = 0..K-1      (channels 0..K-1)
    cos(2^k · π · p · t), k = 0..K-1      (channels K..2K-1)

on the time grid ``t_i = 2π · i / (n_ref - 1)``, i.e. ``linspace(0, 2π, n_ref)`` where
``n_ref`` is the TRAINED trace length.  ``t`` is a function of the absolute sample index,
so a training window ``[s, s+W)`` sees exactly ``t_full[s:s+W]`` (bit-identical, not merely
close), and a trace of another length keeps the same time axis (it runs past 2π if longer).

FNO input channel order (:func:`build_input`), ``C = 1 + 2·K_amp + 2·K_feat·F`` channels::

    [0]                       stimulus current / current_scale_nA
    [1 : 1+2K_amp]            amplitude embedding  (sin k=0..K_amp-1, then cos)
    [1+2K_amp + 2K_feat·j ..] feature j embedding  (sin k=0..K_feat-1, then cos), j = 0..F-1

Defaults (K_amp=9, K_feat=1, F=2) give 23 channels.  Phases are computed in float64 (the
highest frequency reaches ~2·10^4 rad at the end of a trace, where float32 would lose
~1e-3 rad) and the result is cast to float32.  Everything is batched torch on the input's
device; no Python loop runs over batch items.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from ..validation import is_int

__all__ = [
    "AMPLITUDE_THRESHOLD_NA",
    "scale_amplitude",
    "n_input_channels",
    "time_grid",
    "frequency_embedding",
    "characteristic_amplitude",
    "minmax_scale",
    "build_input",
]

#: |I| above this (nA) counts as "stimulus on" for :func:`characteristic_amplitude`.
AMPLITUDE_THRESHOLD_NA = 1e-6


def n_input_channels(k_amp: int, k_feat: int, n_features: int) -> int:
    """Number of FNO input channels: current + amplitude embedding + feature embeddings."""
    for name, val in (("k_amp", k_amp), ("k_feat", k_feat), ("n_features", n_features)):
        if not is_int(val) or val < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {val!r}")
    return 1 + 2 * k_amp + 2 * k_feat * n_features


def time_grid(
    n_ref: int,
    *,
    start: int | torch.Tensor = 0,
    length: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Embedding time axis (float64, radians) for samples ``start .. start+length-1``.

    ``n_ref`` is the trained trace length (sample ``n_ref-1`` maps to 2π).  ``start`` is an
    int, giving shape (length,), or a (B,) integer tensor of per-item window offsets,
    giving (B, length).  ``length`` defaults to ``n_ref - start`` for an int start.
    """
    if not is_int(n_ref) or n_ref < 2:
        raise ValueError(f"n_ref (trained trace length in samples) must be an integer >= 2, got {n_ref!r}")
    step = 2.0 * math.pi / (n_ref - 1)
    if isinstance(start, torch.Tensor):
        if start.ndim != 1 or start.dtype.is_floating_point or start.dtype.is_complex:
            raise ValueError(f"start must be a 1-D integer tensor of window offsets, got {start.dtype} {tuple(start.shape)}")
        if length is None:
            raise ValueError("length is required when start is a per-item tensor of offsets")
        dev = start.device if device is None else device
        idx = start.to(dev, torch.float64)[:, None] + torch.arange(length, device=dev, dtype=torch.float64)[None, :]
        return idx * step
    if not is_int(start) or start < 0:
        raise ValueError(f"start must be an integer >= 0 or a tensor of offsets, got {start!r}")
    length = n_ref - start if length is None else length
    if not is_int(length) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    return (start + torch.arange(length, device=device, dtype=torch.float64)) * step


def frequency_embedding(p: torch.Tensor, t: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """(B, 2·n_freqs, W) float32: ``sin(2^k π p t)`` for k < n_freqs, then the cosines.

    ``p``: (B,) scaled scalars; ``t``: (W,) shared or (B, W) per-item time grid
    (:func:`time_grid`).
    """
    if p.ndim != 1:
        raise ValueError(f"p must be a (B,) tensor of scaled scalars, got shape {tuple(p.shape)}")
    if t.ndim not in (1, 2) or (t.ndim == 2 and t.shape[0] != p.shape[0]):
        raise ValueError(f"t must be (W,) or (B={p.shape[0]}, W), got shape {tuple(t.shape)}")
    if n_freqs == 0:
        return torch.empty(p.shape[0], 0, t.shape[-1], device=p.device, dtype=torch.float32)
    t = t.to(device=p.device, dtype=torch.float64)
    t = t[None, None, :] if t.ndim == 1 else t[:, None, :]
    freq = math.pi * 2.0 ** torch.arange(n_freqs, device=p.device, dtype=torch.float64)
    phase = (p.to(torch.float64)[:, None] * freq[None, :])[:, :, None] * t  # (B, K, W)
    return torch.cat([torch.sin(phase), torch.cos(phase)], dim=1).to(torch.float32)


def characteristic_amplitude(stimuli_nA: torch.Tensor, threshold_nA: float = AMPLITUDE_THRESHOLD_NA) -> torch.Tensor:
    """(B,) amplitude (nA) that conditions the surrogate on an arbitrary waveform.

    Defined as the mean current over the "on" samples, where ``|I| > threshold_nA``
    (1e-6 nA), and 0 for an all-zero stimulus.  For a Long Square step this is exactly
    the step amplitude (delay and tail are excluded); for noise or ramps it is the mean
    injected current while the stimulus is on.  Input (B, L) or (L,) (→ scalar tensor).
    """
    x = torch.as_tensor(stimuli_nA)
    if not x.dtype.is_floating_point:
        x = x.to(torch.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"stimuli_nA must be (B, L) or (L,), got shape {tuple(x.shape)}")
    on = x.abs() > threshold_nA
    n_on = on.sum(dim=-1)
    total = torch.where(on, x, torch.zeros_like(x)).to(torch.float64).sum(dim=-1)
    amp = total / n_on.clamp(min=1).to(torch.float64)
    return amp.to(x.dtype)


def minmax_scale(x: torch.Tensor, data_min, data_max, low: float = 0.5, high: float = 3.5) -> torch.Tensor:
    """Map ``[data_min, data_max]`` linearly to ``[low, high]`` (values outside extrapolate)."""
    lo = torch.as_tensor(data_min, dtype=x.dtype, device=x.device)
    hi = torch.as_tensor(data_max, dtype=x.dtype, device=x.device)
    if torch.any(hi <= lo):
        raise ValueError(f"data_max must exceed data_min, got min={data_min!r}, max={data_max!r}")
    return low + (x - lo) * ((high - low) / (hi - lo))


def build_input(
    stimuli_nA: torch.Tensor,
    amp_scaled: torch.Tensor,
    features_scaled: torch.Tensor,
    *,
    n_ref: int,
    k_amp: int = 9,
    k_feat: int = 1,
    current_scale_nA: float = 0.3,
    start: int | torch.Tensor = 0,
) -> torch.Tensor:
    """The FNO input (B, C, W) float32 (channel order in the module docstring).

    ``stimuli_nA`` (B, W) raw current of the (window of the) trace; ``amp_scaled`` (B,)
    and ``features_scaled`` (B, F) already min-max scaled (to [0.5, 3.5] on the training
    range); ``start`` the window offset(s) in samples within the full trace (int or (B,)
    tensor), so windows reuse the full trace's time values.
    """
    if stimuli_nA.ndim != 2:
        raise ValueError(f"stimuli_nA must be (B, W), got shape {tuple(stimuli_nA.shape)}")
    b, w = stimuli_nA.shape
    if amp_scaled.shape != (b,):
        raise ValueError(f"amp_scaled must have shape ({b},), got {tuple(amp_scaled.shape)}")
    if features_scaled.ndim != 2 or features_scaled.shape[0] != b:
        raise ValueError(f"features_scaled must be ({b}, F), got {tuple(features_scaled.shape)}")
    if not current_scale_nA > 0:
        raise ValueError(f"current_scale_nA must be > 0, got {current_scale_nA!r}")
    dev = stimuli_nA.device
    if isinstance(start, torch.Tensor):
        t = time_grid(n_ref, start=start.to(dev), length=w)
    else:
        t = time_grid(n_ref, start=start, length=w, device=dev)
    parts = [(stimuli_nA.to(torch.float32) / current_scale_nA)[:, None, :],
             frequency_embedding(amp_scaled.to(dev), t, k_amp)]
    n_feat = features_scaled.shape[1]
    if n_feat and k_feat:
        # All features in one call: fold the feature axis into the batch, then unfold.
        tf = t if t.ndim == 1 else t.repeat_interleave(n_feat, dim=0)
        emb = frequency_embedding(features_scaled.to(dev).reshape(-1), tf, k_feat)  # (B·F, 2K, W)
        parts.append(emb.reshape(b, n_feat * 2 * k_feat, w))
    return torch.cat(parts, dim=1)


def scale_amplitude(amp_nA, amp_range_nA, scaled_range) -> np.ndarray:
    """Characteristic amplitudes (nA) mapped linearly from the trained `amp_range_nA` (min, max) onto
    `scaled_range` (low, high), NOBLE's [0.5, 3.5]: the one amplitude scaling of training and prediction."""
    (lo, hi), (a, b) = amp_range_nA, scaled_range
    return a + (np.asarray(amp_nA, dtype=np.float64) - lo) * (b - a) / (hi - lo)
