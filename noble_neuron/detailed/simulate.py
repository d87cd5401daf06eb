"""Build a detailed model in NEURON and run one (cell, protocol) pair: the somatic voltage trace.

This is the only module of the data pipeline that touches NEURON; it imports it lazily.
A `CellSpec` (`noble_neuron.detailed.spec`) names ANY HoC template + constructor arguments +
preloads + mechanisms folder + parameter set, so users with their own detailed model follow
the same path as the shipped PV family.

Parameters ``"<sectionlist>.<rangevar>"`` are applied to every segment of every section in the
template's SectionList of that name: a number as is, a distance expression per segment. A
number that would flatten a density the template made vary along the list warns
(`FlattenedGradientWarning`); ``"global.<name>"`` sets hoc globals (``celsius``, ``v_init``).
"""
from __future__ import annotations

import logging
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .spec import CellSpec, distance_function, file_sha256
from ..stimuli.protocols import LongSquare, Protocol, n_samples
from ..errors import SimulationError, FlattenedGradientWarning  # noqa: F401 (raised here, defined in errors)

__all__ = [
    "CellSpec",
    "SimulationResult",
    "SimulationError",
    "FlattenedGradientWarning",
    "instantiate_cell",
    "apply_parameters",
    "apply_globals",
    "simulate",
    "downsample_trace",
    "file_sha256",
]

log = logging.getLogger(__name__)

SIM_DT_MS = 0.02
DOWNSAMPLE = 3
_INSERT_RE = re.compile(r"\binsert\s+(\w+)")
_BUILTIN_MECHS = {"pas", "hh", "extracellular", "fastpas", "capacitance", "morphology"}
_loaded_templates: dict[str, str] = {}
_preloaded: set[str] = set()
_CONSTRUCTOR_ARG_RE = re.compile(r"\$[so]?(\d+)")
# NEURON's value of every hoc global a parameter set has changed, so the next model starts
# from the defaults instead of inheriting e.g. the previous model's celsius or v_init.
_global_defaults: dict[str, float] = {}


def _preload(h, spec: CellSpec) -> None:
    """Load the spec's preload files (once per process), in order."""
    for name in spec.preload:
        key = str(Path(name).resolve()) if Path(name).is_file() else name
        if key in _preloaded:
            continue
        try:
            ok = h.load_file(key)
        except RuntimeError as exc:
            ok, why = 0, str(exc)
        else:
            why = "not found on disk nor in NEURON's library, or a hoc error"
        if not ok:
            raise SimulationError(f"{spec.model_id}: preload {name!r} could not be loaded ({why}); give an existing .hoc "
                                  "file or a NEURON library file such as import3d.hoc")
        _preloaded.add(key)


def _template_text(spec: CellSpec) -> str:
    path = Path(spec.template_path)
    if not path.is_file():
        raise SimulationError(f"{spec.model_id}: HoC template file {path} does not exist or is not a file")
    try:
        return path.read_text()
    except OSError as exc:
        raise SimulationError(f"{spec.model_id}: HoC template {path} cannot be read: {exc}") from None


def _load_template(h, spec: CellSpec) -> None:
    """Load preloads, then the template file (or a loader file whose load_file calls define it)."""
    path = Path(spec.template_path)
    text = _template_text(spec)
    _preload(h, spec)
    defines = re.search(rf"^\s*begintemplate\s+{re.escape(spec.template_name)}\b", text, re.MULTILINE) is not None
    if defines:
        code = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)  # ignore commented-out inserts
        missing = sorted({m for m in _INSERT_RE.findall(code) if m not in _BUILTIN_MECHS and not hasattr(h, m)})
        if missing:
            raise SimulationError(
                f"{spec.model_id}: template {path.name} inserts mechanism(s) {missing} that are not loaded in NEURON; "
                f"compile them (mechanisms_dir={spec.mechanisms_dir!r} must hold their .mod files)"
            )
    resolved = str(path.resolve())
    known = _loaded_templates.get(spec.template_name)
    if known is not None and known != resolved:
        raise SimulationError(
            f"template {spec.template_name!r} was already loaded from {known}; NEURON cannot redefine a template "
            f"in one process, so {resolved} cannot be used alongside it (rename the template)"
        )
    if known is not None:
        return
    if hasattr(h, spec.template_name):
        if defines:
            raise SimulationError(f"a hoc object named {spec.template_name!r} already exists; rename the template")
        _loaded_templates[spec.template_name] = resolved  # defined by a preload
        return
    try:
        ok = h.load_file(resolved)
    except RuntimeError as exc:
        ok, why = 0, str(exc)
    else:
        why = "hoc syntax error?"
    if not ok:
        raise SimulationError(f"{spec.model_id}: NEURON failed to load {path} ({why})")
    if not hasattr(h, spec.template_name):
        raise SimulationError(
            f"{spec.model_id}: template {spec.template_name!r} is not defined in {path} nor by the files it loads "
            f"(preloads: {list(spec.preload) or 'none'}); check --template-name, or load the file defining it "
            "with --preload")
    _loaded_templates[spec.template_name] = resolved


def apply_globals(h, parameters: Mapping[str, float], model_id: str = "?") -> None:
    """Reset globals changed by earlier models, then set this model's ``global.*`` parameters."""
    for name, value in _global_defaults.items():
        setattr(h, name, value)
    for key, value in parameters.items():
        where, name = key.split(".", 1)
        if where != "global":
            continue
        if not hasattr(h, name):
            raise SimulationError(f"{model_id}: parameter {key}: NEURON has no global named {name!r}")
        _global_defaults.setdefault(name, float(getattr(h, name)))
        setattr(h, name, float(value))


def _segment_values(sections, name: str) -> np.ndarray:
    return np.array([getattr(seg, name) for sec in sections for seg in sec], dtype=float)


def apply_parameters(h, cell, parameters: Mapping[str, float | str], model_id: str = "?", *,
                     set_globals: bool = True) -> None:
    """Set every parameter on the instantiated `cell`; unknown names raise SimulationError.

    A distance expression is evaluated per segment at its path distance (µm) from soma(0.5)."""
    if set_globals:
        apply_globals(h, parameters, model_id)
    origin = None
    for key, value in parameters.items():
        where, name = key.split(".", 1)
        if where == "global":
            continue
        seclist = getattr(cell, where, None)
        if seclist is None:
            raise SimulationError(
                f"{model_id}: parameter {key}: the template has no SectionList named {where!r}"
            )
        sections = list(seclist)
        if not sections:
            raise SimulationError(f"{model_id}: parameter {key}: SectionList {where!r} is empty")
        if name == "Ra":
            for sec in sections:
                sec.Ra = value
            continue
        for sec in sections:
            if not hasattr(sec(0.5), name):
                raise SimulationError(
                    f"{model_id}: parameter {key}: section {sec.name()} has no range variable {name!r} "
                    "(misspelt, or its mechanism is not inserted there)"
                )
        if isinstance(value, str):
            value_at = distance_function(value, f"{model_id}: parameter {key}")
            origin = origin or soma_section(cell)(0.5)
            for sec in sections:
                for seg in sec:
                    x = value_at(h.distance(origin, seg))
                    if not math.isfinite(x):
                        raise SimulationError(f"{model_id}: parameter {key} = {value!r} is {x} at {seg}; the "
                                              "expression must be finite at every segment")
                    setattr(seg, name, x)
            continue
        before = _segment_values(sections, name)
        if before.size > 1 and np.ptp(before) > 1e-6 * max(np.abs(before).max(), 1e-30):
            warnings.warn(
                f"parameter {key} = {value} replaces a density that the template makes vary along {where!r} "
                f"({before.min():.4g} … {before.max():.4g}) with one value; give it as an expression of distance "
                f"(µm from the soma), e.g. \"{value} * exp(distance / 300)\", to keep a gradient",
                FlattenedGradientWarning, stacklevel=2)
        for sec in sections:
            for seg in sec:
                setattr(seg, name, value)


def _constructor_failed(spec: CellSpec, exc: Exception) -> SimulationError:
    text = _template_text(spec)
    init = re.search(r"proc\s+init\s*\(\s*\)\s*\{(.*?)^\}", text, re.DOTALL | re.MULTILINE)
    wanted = sorted({int(n) for n in _CONSTRUCTOR_ARG_RE.findall(init.group(1) if init else "")})
    if wanted and len(spec.template_args) < max(wanted):
        return SimulationError(
            f"{spec.model_id}: template {spec.template_name} takes {max(wanted)} constructor argument(s) "
            f"(its init() uses ${max(wanted)}) and got {len(spec.template_args)}: give them with "
            "--template-args (CLI) or \"template_args\": [...] in the model JSON (e.g. the morphology file)")
    return SimulationError(f"{spec.model_id}: creating {spec.template_name}({', '.join(map(repr, spec.template_args))}) "
                           f"failed: {exc}; NEURON printed the hoc error above")


def instantiate_cell(spec: CellSpec):
    """Load mechanisms, preloads and template, create the cell and apply `spec.parameters`."""
    from neuron import h

    from .mechanisms import load_mechanisms

    h.load_file("stdrun.hoc")
    if spec.mechanisms_dir is not None:
        load_mechanisms(spec.mechanisms_dir)
    _load_template(h, spec)
    try:
        cell = getattr(h, spec.template_name)(*spec.template_args)
    except RuntimeError as exc:
        raise _constructor_failed(spec, exc) from None
    numbers = {k: v for k, v in spec.parameters.items() if not isinstance(v, str)}
    apply_parameters(h, cell, numbers, spec.model_id)
    if hasattr(cell, "geom_nseg"):
        cell.geom_nseg()  # Ra/cm changed: recompute the d_lambda discretisation
    expressions = {k: v for k, v in spec.parameters.items() if isinstance(v, str)}
    apply_parameters(h, cell, expressions, spec.model_id, set_globals=False)  # per segment of the final nseg
    if not hasattr(cell, "soma"):
        raise SimulationError(f"{spec.model_id}: template {spec.template_name} has no public 'soma' section")
    return cell


def soma_section(cell):
    """The soma Section of a template cell (`create soma` or `create soma[n]`)."""
    soma = cell.soma
    return soma[0] if hasattr(soma, "__getitem__") and not hasattr(soma, "L") else soma


def downsample_trace(x: np.ndarray, factor: int, n_out: int) -> np.ndarray:
    """Low-pass (linear-phase FIR, aligned) and decimate by `factor`, keeping `n_out` samples.

    Edges are extended linearly before filtering: zero padding would pull the first and
    last samples of a −70 mV trace towards 0 mV.
    """
    if factor == 1:
        return np.asarray(x[:n_out], dtype=float)
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(x, dtype=float), 1, factor, padtype="line")[:n_out]


@dataclass(frozen=True)
class SimulationResult:
    """Somatic voltage (mV) and injected current (nA) sampled every dt_ms from t = 0."""

    v_mV: np.ndarray
    i_nA: np.ndarray
    dt_ms: float
    wall_s: float


STEADY_STATE_STEPS = 200  # backward-Euler steps of 1e9 ms: enough for Ih-type slow positive feedback (30 are not)


def steady_state_initialize(h, v_mV: float) -> None:
    """`finitialize(v_mV)`, then bring every state to its resting steady state before t = 0.

    The NEURON book's recipe (ch. 8): backward-Euler steps of 1e9 ms at t < 0 (no stimulus is
    on, nothing is recorded) move every compartment and gate to the steady state of the
    unstimulated cell, so dendrites whose rest differs from the soma's (an Ih gradient) start
    at their own rest; t and dt are then restored and recordings restarted."""
    dt = h.dt
    h.finitialize(float(v_mV))
    h.t = -1e12
    h.dt = 1e9
    for _ in range(STEADY_STATE_STEPS):
        h.fadvance()
    h.t = 0.0
    h.dt = dt
    h.fcurrent()
    h.frecord_init()


def simulate(
    spec: CellSpec,
    protocol: Protocol,
    sim_dt_ms: float = SIM_DT_MS,
    downsample: int = DOWNSAMPLE,
    cvode: bool = False,
    cell=None,
    v_init_mV: float | None = None,
    steady_state: bool = False,
) -> SimulationResult:
    """Simulate `protocol` on the soma of `spec` (fixed step `sim_dt_ms` unless cvode).

    ``v_init_mV``: the initial voltage (e.g. the model's rest found by `calibration.resting_potential`);
    None → hoc's ``v_init`` (NEURON's default, or the model's ``global.v_init``).
    ``steady_state``: start from the cell's steady state (`steady_state_initialize`) instead of a
    uniform voltage (fixed step only).

    The trace is recorded every sim_dt_ms, low-pass filtered and decimated by `downsample`
    (NOBLE: 0.02 ms → 0.06 ms, 8583 samples for 515 ms). Pass `cell` to reuse an
    already instantiated cell of the same spec.
    """
    if not isinstance(downsample, int) or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    n_sim = n_samples(protocol.total_ms, sim_dt_ms)
    out_dt = sim_dt_ms * downsample
    n_out = n_samples(protocol.total_ms, out_dt)
    from neuron import h

    if cell is None:
        cell = instantiate_cell(spec)
    else:
        apply_globals(h, spec.parameters, spec.model_id)  # another model may have changed them since
    soma = soma_section(cell)
    stim = h.IClamp(soma(0.5))
    played = None
    if isinstance(protocol, LongSquare):
        stim.delay, stim.dur, stim.amp = protocol.delay_ms, protocol.dur_ms, protocol.step_nA
    else:
        stim.delay, stim.dur = 0.0, 1e9
        i_sim = protocol.render(sim_dt_ms)
        played = (h.Vector(i_sim), h.Vector(np.arange(n_sim) * sim_dt_ms))
        played[0].play(stim._ref_amp, played[1], 1)
    v_rec = h.Vector().record(soma(0.5)._ref_v, sim_dt_ms)
    h.dt = sim_dt_ms
    h.steps_per_ms = 1.0 / sim_dt_ms
    h.tstop = protocol.total_ms
    h.cvode_active(1 if cvode else 0)
    start = time.perf_counter()
    try:
        v0 = h.v_init if v_init_mV is None else float(v_init_mV)
        if steady_state and not cvode:
            steady_state_initialize(h, v0)
        else:
            h.finitialize(v0)
        h.continuerun(protocol.total_ms)
    finally:
        wall = time.perf_counter() - start
        h.cvode_active(0)
    v = v_rec.as_numpy()[:n_sim].copy()
    del stim, played
    if v.size < n_sim or not np.all(np.isfinite(v)):
        raise SimulationError(
            f"{spec.model_id}: simulation of {protocol.kind} amp={protocol.amp_nA} nA produced "
            f"{'too few samples' if v.size < n_sim else 'NaN/Inf voltages'} (unstable parameters or dt too large)"
        )
    v_out = downsample_trace(v, downsample, n_out).astype(np.float32)
    i_out = protocol.render(out_dt).astype(np.float32)
    return SimulationResult(v_mV=v_out, i_nA=i_out, dt_ms=out_dt, wall_s=wall)
