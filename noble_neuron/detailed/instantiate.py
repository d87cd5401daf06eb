"""Build a detailed model in NEURON: mechanisms, preloads, the template (with constructor arguments),
then its parameters. The only module of `noble_neuron.detailed` that touches NEURON (lazily).

Parameters ``"<sectionlist>.<rangevar>"`` are applied to every segment of every section in the
template's SectionList of that name: a number as is, a distance expression per segment (after
``geom_nseg``). A number that would flatten a density the template made vary along the list
warns (`FlattenedGradientWarning`); ``"global.<name>"`` sets hoc globals (``celsius``, ``v_init``),
reset between models.
"""
from __future__ import annotations

import io
import math
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ..errors import FlattenedGradientWarning, SimulationError
from .spec import CellSpec, distance_function

__all__ = ["instantiate_cell", "apply_parameters", "apply_globals", "soma_section", "SimulationError",
           "FlattenedGradientWarning"]

_INSERT_RE = re.compile(r"\binsert\s+(\w+)")
_BUILTIN_MECHS = {"pas", "hh", "extracellular", "fastpas", "capacitance", "morphology"}
_loaded_templates: dict[str, str] = {}
_preloaded: set[str] = set()
_CONSTRUCTOR_ARG_RE = re.compile(r"\$[so]?(\d+)")
# NEURON's value of every hoc global a parameter set has changed, so the next model starts
# from the defaults instead of inheriting e.g. the previous model's celsius or v_init.
_global_defaults: dict[str, float] = {}


@contextmanager
def _neuron_stderr() -> Iterator[list[str]]:
    """What NEURON writes meanwhile as its hoc errors (through Python's sys.stderr, or straight to file descriptor 2),
    into the yielded list; echoed to sys.stderr after."""
    sys.stderr.flush()
    saved_fd, saved_stream = os.dup(2), sys.stderr
    box: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        sys.stderr = io.StringIO()
        try:
            yield box
        finally:
            said_py = sys.stderr.getvalue()
            sys.stderr = saved_stream
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            tmp.seek(0)
            text = said_py + tmp.read().decode(errors="replace")
            if text:
                sys.stderr.write(text)
            box.append(text)


def _hoc_error(text: str) -> str | None:
    """NEURON's first error line in its stderr text, with the fix where it is known (a library template not loaded)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("NEURON --", "Duke", "See "))]
    first = next((ln for ln in lines if re.search(r"error|not a template|undefined|not found", ln, re.IGNORECASE)),
                 lines[0] if lines else None)
    if first is None:
        return None
    first = re.sub(r"^(NEURON|nrniv|python):\s*", "", first)
    missing = re.search(r"(\w+) is not a template", text)
    if missing and missing.group(1).startswith("Import3d"):
        return f"NEURON: {first!r}; the template needs NEURON's Import3d: add --preload import3d.hoc"
    if missing:
        return (f"NEURON: {first!r}; {missing.group(1)} is defined nowhere yet: load the file defining it first with "
                "--preload (NEURON's own library files: stdlib.hoc, import3d.hoc)")
    return f"NEURON: {first!r}"


_ascii_links: dict[str, str] = {}


def _ascii_path(name: str) -> str:
    """`name`, or for a file whose path NEURON cannot take (NEURON 9 passes only ASCII strings to hoc: "python string
    arg cannot decode into c_str") an ASCII-named symbolic link to it in a temporary folder."""
    try:
        name.encode("ascii")
        return name
    except UnicodeEncodeError:
        pass
    path = Path(name)
    if not path.is_file():
        return name
    key = str(path.resolve())
    if key not in _ascii_links:
        link = Path(tempfile.mkdtemp(prefix="noble_neuron_")) / ("model" + "".join(
            c for c in path.suffix if c.isascii()))
        link.symlink_to(key)
        _ascii_links[key] = str(link)
    return _ascii_links[key]


def _load_hoc(h, name: str, likely_cause: str) -> str | None:
    """`h.load_file(name)`; None when it loaded, else why not (NEURON's first error line and its fix, or
    `likely_cause`). A file under a non-ASCII path is loaded through an ASCII link (`_ascii_path`)."""
    name = _ascii_path(name)
    with _neuron_stderr() as said:
        try:
            ok = h.load_file(name)
        except RuntimeError as exc:
            ok, raised = False, str(exc)
        else:
            raised = None
    if ok:
        return None
    return _hoc_error(said[0] if said else "") or raised or likely_cause


def _preload(h, spec: CellSpec) -> None:
    """Load the spec's preload files (once per process), in order."""
    for name in spec.preload:
        key = str(Path(name).resolve()) if Path(name).is_file() else name
        if key in _preloaded:
            continue
        why = _load_hoc(h, key, "not found on disk nor in NEURON's library, or a hoc error")
        if why is not None:
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
    why = _load_hoc(h, resolved, "hoc syntax error?")
    if why is not None:
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


