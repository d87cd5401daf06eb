"""Stimulus protocols as data: frozen dataclasses that render to current arrays (nA).

Protocols know nothing about NEURON. Each is a continuous-time description of a somatic
current; `render(dt_ms)` samples it at t = k·dt for k = 0 … n−1 with n = round(total_ms/dt_ms),
so the same protocol gives consistent arrays at the simulation dt (0.02 ms) and at the
stored dt (0.06 ms). Noise-based protocols are defined on their own fixed time grid
(`noise_dt_ms`) from a seed and linearly interpolated, so they do not depend on dt.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import numpy as np

from ..config_io import checked_mapping
from ..validation import is_int, is_real

__all__ = [
    "LongSquare",
    "Ramp",
    "OUNoise",
    "SynapticBarrage",
    "Protocol",
    "PROTOCOL_KINDS",
    "protocol_from_dict",
    "n_samples",
    "step_on",
    "step_current",
]

#: NOBLE's Long Square timing (Allen Cell Types convention shifted to a 15 ms delay).
LONG_SQUARE_DELAY_MS = 15.0
LONG_SQUARE_DUR_MS = 400.0
LONG_SQUARE_TOTAL_MS = 515.0
#: plausibility bound on one protocol's window (ms): longer is almost certainly a unit mistake
MAX_TOTAL_MS = 60_000.0


def n_samples(total_ms: float, dt_ms: float) -> int:
    """Samples of a `total_ms` window at `dt_ms`: t = 0, dt, … < total (515 ms at 0.06 ms → 8583)."""
    if not (math.isfinite(dt_ms) and dt_ms > 0):
        raise ValueError(f"dt_ms must be a positive finite number, got {dt_ms!r}")
    if dt_ms > total_ms:
        raise ValueError(f"dt_ms={dt_ms} is larger than the protocol window total_ms={total_ms}")
    return int(math.floor(total_ms / dt_ms + 1e-9))


def _check_finite(obj: Any) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{type(obj).__name__}.{f.name} must be finite, got {value!r}")


EDGE_EPS_MS = 1e-9  # k·dt round-off must not move a sample across a stimulus edge


def step_on(t_ms: np.ndarray, delay_ms, dur_ms) -> np.ndarray:
    """True where a stimulus is on: delay <= t < delay + dur (ms), as NEURON's IClamp; the one on-window rule
    of protocols, SurrogateCell inputs and the network engines."""
    return (t_ms >= delay_ms - EDGE_EPS_MS) & (t_ms < delay_ms + dur_ms - EDGE_EPS_MS)


def step_current(t_ms: np.ndarray, delay_ms, dur_ms, amp_nA) -> np.ndarray:
    """An IClamp's current (nA) at times `t_ms`: `amp_nA` while `step_on`, else 0 (arrays broadcast)."""
    return np.where(step_on(t_ms, delay_ms, dur_ms), amp_nA, 0.0)


@dataclass(frozen=True)
class _Windowed:
    """Shared timing: the stimulus is on during [delay_ms, delay_ms + dur_ms) within total_ms."""

    delay_ms: float = LONG_SQUARE_DELAY_MS
    dur_ms: float = LONG_SQUARE_DUR_MS
    total_ms: float = LONG_SQUARE_TOTAL_MS
    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if is_real(value) and f.type in ("float", float):  # numpy scalars too: protocols must stay JSON-able
                object.__setattr__(self, f.name, float(value))
            elif is_int(value) and f.type in ("int", int):
                object.__setattr__(self, f.name, int(value))
        _check_finite(self)
        if self.dur_ms <= 0:
            raise ValueError(f"{self.kind}: dur_ms must be > 0, got {self.dur_ms}")
        if self.delay_ms < 0:
            raise ValueError(f"{self.kind}: delay_ms must be >= 0, got {self.delay_ms}")
        if self.total_ms <= 0:
            raise ValueError(f"{self.kind}: total_ms must be > 0, got {self.total_ms}")
        if self.total_ms > MAX_TOTAL_MS:
            raise ValueError(f"{self.kind}: total_ms = {self.total_ms:g} ms is more than {MAX_TOTAL_MS:g} ms of model "
                             "time per simulation (hours of NEURON time per row); check the unit (ms)")
        if self.delay_ms + self.dur_ms > self.total_ms + 1e-9:
            raise ValueError(
                f"{self.kind}: delay_ms + dur_ms = {self.delay_ms + self.dur_ms} exceeds total_ms = {self.total_ms}"
            )

    @property
    def stim_end_ms(self) -> float:
        return self.delay_ms + self.dur_ms

    def _on(self, t_ms: np.ndarray) -> np.ndarray:
        return step_on(t_ms, self.delay_ms, self.dur_ms)

    def current_at(self, t_ms: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def render(self, dt_ms: float) -> np.ndarray:
        """Current (nA, float64) at t = k·dt_ms, k = 0 … n−1."""
        t = np.arange(n_samples(self.total_ms, dt_ms)) * dt_ms
        return self.current_at(t)

    @property
    def amp_nA(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class LongSquare(_Windowed):
    """A current step of `step_nA` (nA) from delay_ms for dur_ms (NOBLE/Allen Long Square)."""

    step_nA: float = 0.0
    kind: ClassVar[str] = "long_square"

    def current_at(self, t_ms: np.ndarray) -> np.ndarray:
        t_ms = np.asarray(t_ms, dtype=float)
        return np.where(self._on(t_ms), self.step_nA, 0.0)

    @property
    def amp_nA(self) -> float:
        """Characteristic amplitude used to label the trace: the step amplitude."""
        return self.step_nA


@dataclass(frozen=True)
class Ramp(_Windowed):
    """A linear ramp from start_nA to end_nA during the stimulus window (nA)."""

    start_nA: float = 0.0
    end_nA: float = 0.3
    kind: ClassVar[str] = "ramp"

    def current_at(self, t_ms: np.ndarray) -> np.ndarray:
        t_ms = np.asarray(t_ms, dtype=float)
        frac = (t_ms - self.delay_ms) / self.dur_ms
        return np.where(self._on(t_ms), self.start_nA + frac * (self.end_nA - self.start_nA), 0.0)

    @property
    def amp_nA(self) -> float:
        """Characteristic amplitude: the mean current during the ramp."""
        return 0.5 * (self.start_nA + self.end_nA)


def _interp_on_grid(values: np.ndarray, grid_dt_ms: float, t_ms: np.ndarray, t0_ms: float) -> np.ndarray:
    grid_t = t0_ms + np.arange(values.size) * grid_dt_ms
    return np.interp(t_ms, grid_t, values)


@dataclass(frozen=True)
class OUNoise(_Windowed):
    """Ornstein–Uhlenbeck current: mean_nA + OU(sigma_nA, tau_ms), seeded, during the window."""

    mean_nA: float = 0.1
    sigma_nA: float = 0.05
    tau_ms: float = 5.0
    seed: int = 0
    noise_dt_ms: float = 0.06
    kind: ClassVar[str] = "ou_noise"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma_nA < 0:
            raise ValueError(f"ou_noise: sigma_nA must be >= 0, got {self.sigma_nA}")
        if self.tau_ms <= 0 or self.noise_dt_ms <= 0:
            raise ValueError("ou_noise: tau_ms and noise_dt_ms must be > 0")

    def _noise(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        n = int(math.ceil(self.dur_ms / self.noise_dt_ms)) + 2
        decay = math.exp(-self.noise_dt_ms / self.tau_ms)
        kicks = rng.standard_normal(n) * self.sigma_nA * math.sqrt(1.0 - decay**2)
        x = np.empty(n)
        x[0] = rng.standard_normal() * self.sigma_nA  # start in the stationary distribution
        for k in range(1, n):  # n ≈ 7000: a short recurrence, cheap next to a NEURON run
            x[k] = decay * x[k - 1] + kicks[k]
        return x

    def current_at(self, t_ms: np.ndarray) -> np.ndarray:
        t_ms = np.asarray(t_ms, dtype=float)
        noise = _interp_on_grid(self._noise(), self.noise_dt_ms, t_ms, self.delay_ms)
        return np.where(self._on(t_ms), self.mean_nA + noise, 0.0)

    @property
    def amp_nA(self) -> float:
        return self.mean_nA


@dataclass(frozen=True)
class SynapticBarrage(_Windowed):
    """Sum of exponential postsynaptic currents at Poisson times (current-based, nA).

    Excitatory events add +w_exc_nA, inhibitory events −w_inh_nA, each decaying with its
    time constant. Conductance-based input needs the cell's voltage and is handled by the
    network engine, not here.
    """

    rate_exc_Hz: float = 1500.0
    rate_inh_Hz: float = 400.0
    w_exc_nA: float = 0.02
    w_inh_nA: float = 0.015
    tau_exc_ms: float = 2.0
    tau_inh_ms: float = 6.0
    seed: int = 0
    noise_dt_ms: float = 0.02
    kind: ClassVar[str] = "synaptic_barrage"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("rate_exc_Hz", "rate_inh_Hz", "w_exc_nA", "w_inh_nA"):
            if getattr(self, name) < 0:
                raise ValueError(f"synaptic_barrage: {name} must be >= 0, got {getattr(self, name)}")
        if min(self.tau_exc_ms, self.tau_inh_ms, self.noise_dt_ms) <= 0:
            raise ValueError("synaptic_barrage: time constants and noise_dt_ms must be > 0")

    def _trace(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        n = int(math.ceil(self.dur_ms / self.noise_dt_ms)) + 2
        out = np.zeros(n)
        for rate, w, tau in (
            (self.rate_exc_Hz, self.w_exc_nA, self.tau_exc_ms),
            (-self.rate_inh_Hz, self.w_inh_nA, self.tau_inh_ms),
        ):
            counts = rng.poisson(abs(rate) * self.noise_dt_ms * 1e-3, size=n).astype(float)
            kernel = np.exp(-np.arange(int(8 * tau / self.noise_dt_ms) + 1) * self.noise_dt_ms / tau)
            out += math.copysign(w, rate) * np.convolve(counts, kernel)[:n]
        return out

    def current_at(self, t_ms: np.ndarray) -> np.ndarray:
        t_ms = np.asarray(t_ms, dtype=float)
        trace = _interp_on_grid(self._trace(), self.noise_dt_ms, t_ms, self.delay_ms)
        return np.where(self._on(t_ms), trace, 0.0)

    @property
    def amp_nA(self) -> float:
        """Characteristic amplitude: the expected mean current of the barrage."""
        return 1e-3 * (
            self.rate_exc_Hz * self.w_exc_nA * self.tau_exc_ms - self.rate_inh_Hz * self.w_inh_nA * self.tau_inh_ms
        )


Protocol = Union[LongSquare, Ramp, OUNoise, SynapticBarrage]
PROTOCOL_KINDS: dict[str, type] = {cls.kind: cls for cls in (LongSquare, Ramp, OUNoise, SynapticBarrage)}


def protocol_from_dict(d: dict[str, Any]) -> Protocol:
    """Build a protocol from its dict form; unknown kinds or keys are rejected."""
    if not isinstance(d, dict) or "kind" not in d:
        raise ValueError(f"a protocol must be a mapping with a 'kind' key, got {d!r}")
    d = dict(d)
    kind = d.pop("kind")
    cls = PROTOCOL_KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown protocol kind {kind!r}; known kinds: {sorted(PROTOCOL_KINDS)}")
    d = checked_mapping(cls, d)
    for f in dataclasses.fields(cls):
        value = d.get(f.name)
        if f.type in ("float", float) and isinstance(value, str):  # PyYAML reads 2e-1 (no dot) as a string
            try:
                d[f.name] = float(value)
            except ValueError:
                raise ValueError(f"{kind}.{f.name} must be a number, got {value!r}") from None
        elif f.type in ("float", float) and value is not None and (
                not is_real(value)):
            raise ValueError(f"{kind}.{f.name} must be a number, got {value!r}")
    return cls(**d)
