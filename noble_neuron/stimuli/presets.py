"""Protocol sets: amplitude grids, per-model continuous draws, rheobase-relative plans, the
streaming-mode training inputs, named presets, and protocols loaded from YAML/JSON files."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..config_io import checked_mapping
from ..validation import is_int
from .protocols import (LONG_SQUARE_DELAY_MS, LONG_SQUARE_DUR_MS, LONG_SQUARE_TOTAL_MS, LongSquare, OUNoise, Protocol,
                        Ramp, SynapticBarrage, protocol_from_dict)

__all__ = ["long_square_grid", "PRESETS", "PER_MODEL_PRESETS", "long_square_draws", "RheobaseRelativeSteps",
           "STREAMING_TOTAL_MS", "streaming_draws", "load_protocols", "load_model_protocols"]

def long_square_grid(amps_nA, **timing) -> list[LongSquare]:
    """Long Square steps at each amplitude of `amps_nA` (nA), rounded to 0.1 pA."""
    return [LongSquare(step_nA=round(float(a), 4), **timing) for a in amps_nA]


def _grid(start: float, stop: float, step: float) -> np.ndarray:
    return np.round(np.arange(start, stop + step / 2, step), 4)


#: Named protocol sets. "train" is the amplitude grid of the shipped training dataset:
#: −0.11 … 0.35 nA every 10 pA (47 steps), covering hyperpolarisation (sag), the
#: subthreshold range, rheobase of every family member and strong (≈250 Hz) firing.
#: "heldout_amps" sits between the training amplitudes (unseen-amplitude evaluation).
PRESETS: dict[str, callable] = {
    "demo": lambda: long_square_grid(_grid(-0.1, 0.4, 0.05)),
    "train": lambda: long_square_grid(_grid(-0.11, 0.35, 0.01)),
    "heldout_amps": lambda: long_square_grid(_grid(-0.105, 0.345, 0.05)),
    "fi_fine": lambda: long_square_grid(_grid(0.0, 0.40, 0.005)),
    "waveforms": lambda: (
        [OUNoise(mean_nA=m, sigma_nA=s, tau_ms=5.0, seed=i) for i, (m, s) in
         enumerate([(0.05, 0.05), (0.15, 0.05), (0.25, 0.1), (0.1, 0.15)])]
        + [Ramp(start_nA=0.0, end_nA=0.4), Ramp(start_nA=0.4, end_nA=0.0)]
        + [SynapticBarrage(seed=i, rate_exc_Hz=r) for i, r in enumerate([600.0, 1200.0, 2000.0])]
    ),
    # Network mode (causal surrogate): fluctuating somatic input of the kind a cell sees in a network,
    # OU currents (mean, sigma nA; tau 3 or 10 ms) and Poisson PSC barrages (exc Hz, inh Hz, w_exc nA),
    # on for 500 of 515 ms, plus four Long Squares.
    "network": lambda: (
        [OUNoise(mean_nA=m, sigma_nA=s, tau_ms=(3.0 if i % 2 else 10.0), seed=100 + i, dur_ms=500.0)
         for i, (m, s) in enumerate([(-0.05, 0.05), (0.02, 0.08), (0.08, 0.05), (0.12, 0.1), (0.18, 0.06),
                                     (0.25, 0.1), (0.1, 0.2), (0.3, 0.15)])]
        + [SynapticBarrage(rate_exc_Hz=e, rate_inh_Hz=i, w_exc_nA=w, seed=200 + k, dur_ms=500.0)
           for k, (e, i, w) in enumerate([(1000.0, 1000.0, 0.02), (2000.0, 500.0, 0.03), (3000.0, 800.0, 0.035),
                                          (2500.0, 300.0, 0.04)])]
        + long_square_grid([-0.08, 0.1, 0.2, 0.3])
    ),
}


def long_square_draws(model_index: int, n_hyper: int = 3, n_depol: int = 21, low_nA: float = -0.11,
                      high_nA: float = 0.5, seed: int = 0) -> list[LongSquare]:
    """Long Square amplitudes drawn continuously for one model (nA, sorted, rounded to 0.1 pA).

    Stratified: ``n_hyper`` draws over [low_nA, 0) and ``n_depol`` over [0, high_nA), one uniform
    draw in each equal bin, from a stream seeded by (seed, model_index). Every model sees its own
    amplitudes (no shared 10 pA grid), so held-out draws are amplitudes that appear in no
    training trace, and the grid still covers sag, rheobase and depolarisation block evenly.
    """
    rng = np.random.default_rng([int(seed), int(model_index)])

    def stratified(lo: float, hi: float, n: int) -> np.ndarray:
        edges = np.linspace(lo, hi, n + 1)
        return edges[:-1] + rng.uniform(size=n) * np.diff(edges)

    amps = np.concatenate([stratified(low_nA, 0.0, n_hyper), stratified(0.0, high_nA, n_depol)])
    return long_square_grid(np.sort(amps))


@dataclass(frozen=True)
class RheobaseRelativeSteps:
    """A plan of Long Square amplitudes drawn per model relative to its own rheobase I_thr (nA).

    `datagen.generate` first finds each model's rheobase (`calibration.rheobase`), then draws
    ``n_hyper`` amplitudes over [low_x_rheobase·I_thr, 0) and ``n_depol`` over
    [0, high_x_rheobase·I_thr), stratified like `long_square_draws` and seeded by
    (seed, model index): any cell type, whatever its rheobase, gets sag, subthreshold,
    rheobase and strong firing without a hand-tuned amplitude grid.
    """

    n_hyper: int = 4
    n_depol: int = 20
    low_x_rheobase: float = -0.5
    high_x_rheobase: float = 3.0
    seed: int = 0
    delay_ms: float = LONG_SQUARE_DELAY_MS
    dur_ms: float = LONG_SQUARE_DUR_MS
    total_ms: float = LONG_SQUARE_TOTAL_MS
    kind: ClassVar[str] = "rheobase_relative_steps"

    def __post_init__(self) -> None:
        for name in ("n_hyper", "n_depol", "seed"):
            v = getattr(self, name)
            if not is_int(v) or v < 0:
                raise ValueError(f"{self.kind}: {name} must be an integer >= 0, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.n_depol < 2:
            raise ValueError(f"{self.kind}: n_depol must be >= 2 (an FI curve needs amplitudes above rheobase)")
        if not self.low_x_rheobase <= 0 < self.high_x_rheobase:
            raise ValueError(f"{self.kind}: need low_x_rheobase <= 0 < high_x_rheobase, got "
                             f"{self.low_x_rheobase}, {self.high_x_rheobase}")
        LongSquare(delay_ms=self.delay_ms, dur_ms=self.dur_ms, total_ms=self.total_ms)  # validates the timing

    def for_model(self, model_index: int, rheobase_nA: float) -> list[LongSquare]:
        """The Long Squares of model `model_index` with rheobase `rheobase_nA` (nA)."""
        if not (math.isfinite(rheobase_nA) and rheobase_nA > 0):
            raise ValueError(f"{self.kind}: rheobase must be a finite current > 0 nA, got {rheobase_nA!r}")
        rng = np.random.default_rng([int(self.seed), 4243, int(model_index)])

        def stratified(lo: float, hi: float, n: int) -> np.ndarray:
            edges = np.linspace(lo, hi, n + 1)
            return edges[:-1] + rng.uniform(size=n) * np.diff(edges)

        amps = np.concatenate([stratified(self.low_x_rheobase * rheobase_nA, 0.0, self.n_hyper),
                               stratified(0.0, self.high_x_rheobase * rheobase_nA, self.n_depol)])
        timing = dict(delay_ms=self.delay_ms, dur_ms=self.dur_ms, total_ms=self.total_ms)
        return long_square_grid(np.sort(amps), **timing)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


STREAMING_TOTAL_MS = 2000.0  # streaming-mode training traces: long enough for adaptation and tonic firing


def streaming_draws(model_index: int, seed: int = 1) -> list[Protocol]:
    """Network-mode (streaming) training stimuli for one model: 14 traces of 2 s, drawn per model.

    Every kind of somatic input a cell meets in a network or a protocol, with parameters drawn
    from a stream seeded by (seed, model_index): 4 OU currents (mean −0.05…0.35 nA, sigma
    0.02…0.2 nA, tau 2…15 ms), 5 Poisson PSC barrages (exc 500…4000 Hz, inh 100…2000 Hz,
    tau_exc 1…5 ms, tau_inh 3…10 ms, mean excitation 0.1…0.6 nA and inhibition 10…100 % of
    it, weights to match), 3 steps (0.02…0.45 nA, some
    switched off before the end) and 2 ramps (rising and falling), on from 15 ms.
    """
    rng = np.random.default_rng([int(seed), 7919, int(model_index)])
    u = lambda lo, hi: float(np.round(rng.uniform(lo, hi), 4))  # noqa: E731
    total, delay = STREAMING_TOTAL_MS, LONG_SQUARE_DELAY_MS
    on = dict(delay_ms=delay, dur_ms=total - delay, total_ms=total)
    seed0 = 1000 * int(model_index) + 17 * int(seed)
    out: list[Protocol] = [OUNoise(mean_nA=u(-0.05, 0.35), sigma_nA=u(0.02, 0.2), tau_ms=u(2.0, 15.0),
                                   seed=seed0 + k, **on) for k in range(4)]
    for k in range(5):  # mean excitation 0.1…0.6 nA, inhibition 10…100 % of it; rates and kinetics drawn
        r_e, r_i, t_e, t_i = u(500, 4000), u(100, 2000), u(1.0, 5.0), u(3.0, 10.0)
        m_e = u(0.1, 0.6)
        m_i = m_e * u(0.1, 1.0)
        out.append(SynapticBarrage(rate_exc_Hz=r_e, rate_inh_Hz=r_i, w_exc_nA=round(m_e / (r_e * t_e * 1e-3), 5),
                                   w_inh_nA=round(m_i / (r_i * t_i * 1e-3), 5), tau_exc_ms=t_e, tau_inh_ms=t_i,
                                   seed=seed0 + 10 + k, **on))
    for k, amp in enumerate(np.sort(rng.uniform(0.02, 0.45, size=3))):
        dur = total - delay if k != 1 else u(500.0, 1500.0)  # the middle step switches off: recovery
        out.append(LongSquare(step_nA=round(float(amp), 4), delay_ms=delay, dur_ms=dur, total_ms=total))
    out += [Ramp(start_nA=u(-0.05, 0.1), end_nA=u(0.25, 0.5), **on),
            Ramp(start_nA=u(0.25, 0.5), end_nA=u(-0.05, 0.1), **on)]
    return out


#: Per-model protocol sets (a callable of the model's index). "train_draws" is the shipped
#: whole-trace training set: 24 Long Square amplitudes per model drawn over −0.11 … 0.5 nA;
#: "streaming" the network-mode (streaming surrogate) set, 14 inputs of 2 s per model.
PER_MODEL_PRESETS: dict[str, callable] = {
    "train_draws": lambda model_index: long_square_draws(model_index),
    # twice the draws (12 pA bins): the event model fits 24 amplitudes per model 100x better than it
    # predicts the held-out ones, so more amplitudes per model is what it needs
    "train_draws_48": lambda model_index: long_square_draws(model_index, n_hyper=6, n_depol=42),
    # a training population of hundreds of models (`noble-neuron build-population`): 16 draws each (31 pA bins),
    # a third of train_draws_48, for ~4x the models at the same simulation count (issue 26)
    "population_draws": lambda model_index: long_square_draws(model_index, n_hyper=2, n_depol=14),
    "streaming": lambda model_index: streaming_draws(model_index),
}


def load_protocols(spec: str | Path) -> list[Protocol]:
    """Protocols from a preset name (see PRESETS) or a YAML/JSON file.

    File format: either a list of protocol dicts, or a mapping with any of
    ``protocols: [ {kind: ..., ...}, ... ]`` and
    ``long_square_grid: {start_nA: -0.11, stop_nA: 0.4, step_nA: 0.01}``.
    """
    if str(spec) in PRESETS:
        return list(PRESETS[str(spec)]())
    if str(spec) in PER_MODEL_PRESETS:
        raise ValueError(f"protocol preset {spec!r} draws its protocols per model: use load_model_protocols")
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"protocol {spec!r} is neither a preset ({sorted(PRESETS)}; per model: "
                         f"{sorted(PER_MODEL_PRESETS)}) nor an existing file")
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"protocol file {path} is not valid YAML/JSON: {exc}") from None
    if isinstance(data, list):
        data = {"protocols": data}
    if not isinstance(data, dict):
        raise ValueError(f"protocol file {path} must hold a list or a mapping, got {type(data).__name__}")
    unknown = set(data) - {"protocols", "long_square_grid"}
    if unknown:
        raise ValueError(f"protocol file {path}: unknown key(s) {sorted(unknown)}")
    protocols = [protocol_from_dict(d) for d in data.get("protocols", [])]
    if "long_square_grid" in data:
        g = data["long_square_grid"]
        if not isinstance(g, dict):
            raise ValueError(f"protocol file {path}: long_square_grid must be a mapping with start_nA, stop_nA, step_nA")
        start, stop, step = (_number(path, f"long_square_grid.{k}", g.get(k)) for k in ("start_nA", "stop_nA", "step_nA"))
        if not step > 0 or not stop >= start:
            raise ValueError(f"protocol file {path}: long_square_grid needs step_nA > 0 and stop_nA >= start_nA, got "
                             f"start {start}, stop {stop}, step {step}")
        if (stop - start) / step > 10_000:
            raise ValueError(f"protocol file {path}: long_square_grid gives {int((stop - start) / step) + 1} steps; "
                             "more than 10000 simulations from one grid is almost certainly a unit mistake")
        protocols += long_square_grid(_grid(start, stop, step))
    if not protocols:
        raise ValueError(f"protocol file {path} defines no protocols")
    return protocols


def _number(path, field: str, value) -> float:
    """A YAML number (PyYAML reads "2e-1" as a string: accept it) or a clear error naming the field."""
    if value is None:
        raise ValueError(f"protocol file {path}: {field} is missing (nA)")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"protocol file {path}: {field} must be a number in nA, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"protocol file {path}: {field} must be finite, got {value!r}")
    return x


def _plan_from_file(spec) -> RheobaseRelativeSteps | None:
    """A protocol file ``rheobase_relative_steps: {n_depol: 12, high_x_rheobase: 2.5, ...}`` → the plan."""
    path = Path(spec)
    if str(spec) in PRESETS or not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None  # load_protocols reports it
    if not isinstance(data, dict) or "rheobase_relative_steps" not in data:
        return None
    if set(data) != {"rheobase_relative_steps"}:
        raise ValueError(f"protocol file {path}: rheobase_relative_steps cannot be combined with "
                         f"{sorted(set(data) - {'rheobase_relative_steps'})} (the plan draws every model's steps)")
    d = checked_mapping(RheobaseRelativeSteps, data["rheobase_relative_steps"] or {})
    for k, v in list(d.items()):
        if k.endswith(("_ms", "_rheobase")):
            d[k] = _number(path, f"rheobase_relative_steps.{k}", v)
    return RheobaseRelativeSteps(**d)


def load_model_protocols(spec: str | Path, n_models: int):
    """`load_protocols`, for a per-model preset (PER_MODEL_PRESETS) one list per model, and for
    "adaptive" a `RheobaseRelativeSteps` plan (resolved per model by `datagen.generate`)."""
    if str(spec) == "adaptive":
        return RheobaseRelativeSteps()
    plan = _plan_from_file(spec)
    if plan is not None:
        return plan
    if str(spec) in PER_MODEL_PRESETS:
        return [list(PER_MODEL_PRESETS[str(spec)](i)) for i in range(n_models)]
    return load_protocols(spec)
