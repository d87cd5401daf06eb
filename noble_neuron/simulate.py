"""Run one (cell, protocol) pair in NEURON and return the somatic voltage trace.

This is the only module of the data pipeline that touches NEURON; it imports it lazily.
A `CellSpec` names ANY HoC template + mechanisms folder + parameter set, so users with
their own detailed model follow the same path as the shipped PV family.

Parameter keys are ``"<sectionlist>.<rangevar>"`` (e.g. ``"somatic.gbar_nn_NaT"``,
``"all.cm"``, ``"axonal.Ra"``), applied to every segment of every section in the template's
SectionList of that name, or ``"global.<name>"`` for hoc globals (``celsius``, ``v_init``).
"""
from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .protocols import LongSquare, Protocol, n_samples

__all__ = [
    "CellSpec",
    "SimulationResult",
    "SimulationError",
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
# NEURON's value of every hoc global a parameter set has changed, so the next model starts
# from the defaults instead of inheriting e.g. the previous model's celsius or v_init.
_global_defaults: dict[str, float] = {}


class SimulationError(RuntimeError):
    """A detailed model could not be built or simulated."""


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class CellSpec:
    """A detailed model: HoC template + mechanisms folder + one parameter set.

    template_path: .hoc file defining `template_name`; mechanisms_dir: folder of .mod files
    (compiled and cached on first use) or None if the mechanisms are already loaded;
    parameters: {"<sectionlist>.<rangevar>" | "global.<name>": value}; template_args: passed
    to the template constructor.
    """

    model_id: str
    template_path: str
    template_name: str
    mechanisms_dir: str | None = None
    parameters: Mapping[str, float] = field(default_factory=dict)
    template_args: tuple = ()

    def __post_init__(self) -> None:
        if not self.model_id or not isinstance(self.model_id, str):
            raise ValueError(f"model_id must be a non-empty string, got {self.model_id!r}")
        if not isinstance(self.parameters, Mapping):
            raise TypeError(f"parameters of {self.model_id} must be a mapping, got {type(self.parameters).__name__}")
        for key, value in self.parameters.items():
            _validate_parameter(self.model_id, key, value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "template_path": str(self.template_path),
            "template_name": self.template_name,
            "mechanisms_dir": None if self.mechanisms_dir is None else str(self.mechanisms_dir),
            "parameters": dict(self.parameters),
            "template_args": list(self.template_args),
        }


def _validate_parameter(model_id: str, key: str, value: Any) -> None:
    if not isinstance(key, str) or key.count(".") != 1:
        raise ValueError(
            f"{model_id}: parameter key {key!r} must look like '<sectionlist>.<rangevar>' or 'global.<name>'"
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{model_id}: parameter {key} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{model_id}: parameter {key} is {value}; parameters must be finite")
    name = key.split(".", 1)[1]
    if (name.startswith("g") or name.startswith("gbar")) and value < 0:
        raise ValueError(f"{model_id}: conductance {key} = {value} is negative; conductances must be >= 0 S/cm2")
    if name in ("cm", "Ra") and value <= 0:
        raise ValueError(f"{model_id}: {key} = {value} must be > 0 (cm in uF/cm2, Ra in Ohm·cm)")


def _load_template(h, spec: CellSpec) -> None:
    path = Path(spec.template_path)
    if not path.is_file():
        raise SimulationError(f"{spec.model_id}: HoC template file {path} does not exist or is not a file")
    try:
        text = path.read_text()
    except OSError as exc:
        raise SimulationError(f"{spec.model_id}: HoC template {path} cannot be read: {exc}") from None
    if re.search(rf"^\s*begintemplate\s+{re.escape(spec.template_name)}\b", text, re.MULTILINE) is None:
        raise SimulationError(f"{spec.model_id}: template {spec.template_name!r} is not defined in {path}")
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
    if known is None:
        if hasattr(h, spec.template_name):
            raise SimulationError(f"a hoc object named {spec.template_name!r} already exists; rename the template")
        try:
            ok = h.load_file(resolved)
        except RuntimeError as exc:
            ok, why = 0, str(exc)
        else:
            why = "hoc syntax error?"
        if not ok:
            raise SimulationError(f"{spec.model_id}: NEURON failed to load {path} ({why})")
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


def apply_parameters(h, cell, parameters: Mapping[str, float], model_id: str = "?") -> None:
    """Set every parameter on the instantiated `cell`; unknown names raise SimulationError."""
    apply_globals(h, parameters, model_id)
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
        for sec in sections:
            if name == "Ra":
                sec.Ra = value
                continue
            if not hasattr(sec(0.5), name):
                raise SimulationError(
                    f"{model_id}: parameter {key}: section {sec.name()} has no range variable {name!r} "
                    "(misspelt, or its mechanism is not inserted there)"
                )
            for seg in sec:
                setattr(seg, name, value)


def instantiate_cell(spec: CellSpec):
    """Load mechanisms and template, create the cell and apply `spec.parameters`."""
    from neuron import h

    from .mechanisms import load_mechanisms

    h.load_file("stdrun.hoc")
    if spec.mechanisms_dir is not None:
        load_mechanisms(spec.mechanisms_dir)
    _load_template(h, spec)
    try:
        cell = getattr(h, spec.template_name)(*spec.template_args)
    except RuntimeError as exc:
        raise SimulationError(f"{spec.model_id}: creating {spec.template_name} failed: {exc}") from None
    apply_parameters(h, cell, spec.parameters, spec.model_id)
    if hasattr(cell, "geom_nseg"):
        cell.geom_nseg()  # Ra/cm changed: recompute the d_lambda discretisation
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


def simulate(
    spec: CellSpec,
    protocol: Protocol,
    sim_dt_ms: float = SIM_DT_MS,
    downsample: int = DOWNSAMPLE,
    cvode: bool = False,
    cell=None,
) -> SimulationResult:
    """Simulate `protocol` on the soma of `spec` (fixed step `sim_dt_ms` unless cvode).

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
        h.finitialize(h.v_init)
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
