"""A detailed model as data: HoC template, its constructor arguments, files to load first,
mechanisms and one parameter set. No NEURON here (see `simulate` for building the cell).

Parameter keys:

* ``"<sectionlist>.<rangevar>": number`` sets every segment of the template's SectionList;
* ``"<sectionlist>.<rangevar>": "<expression>"`` sets each segment from an expression of
  ``distance`` (µm, path distance from the middle of the soma), e.g. ``"1e-4 * exp(distance / 300)"``
  for an Ih gradient along the apical dendrite (functions: exp, log, sqrt, abs, min, max; pi, e);
* ``"global.<name>": number`` sets a hoc global (``celsius``, ``v_init``).

A model file (JSON) holds one model ``{"model_id", "parameters", "split"}``, a list of them,
or a mapping with shared keys and ``"models": [...]``::

    {"template": "cell.hoc", "template_name": "Cell", "template_args": ["morph.swc"],
     "preload": ["import3d.hoc", "biophys.hoc"], "mechanisms": "mod",
     "models": [{"model_id": "a", "split": "train", "parameters": {"apical.gbar_Ih": "2e-5 * exp(distance / 200)"}}]}

Relative paths (template, preloads, mechanisms, and string constructor arguments that name a
file) are resolved against the JSON file's folder. ``split`` is ``"train"`` (used for training)
or ``"unseen"`` (held out: evaluated as unseen models); see `assign_splits`.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from ..validation import is_real

__all__ = ["CellSpec", "SPLITS", "distance_function", "load_model_file", "assign_splits", "model_provenance",
           "file_sha256"]

SPLITS = ("train", "unseen")
_EXPRESSION_FUNCTIONS = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "abs": abs, "min": min, "max": max}
_EXPRESSION_CONSTANTS = {"pi": math.pi, "e": math.e}
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call,
                  ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
_LOADS_RE = re.compile(r"""\b(?:load_file|xopen)\s*\(\s*(?:\d+\s*,\s*)?"([^"]+)"\s*\)""")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def distance_function(expression: str, where: str = "parameter"):
    """A float function of ``distance`` (µm) from a parameter expression; ValueError naming what is wrong."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{where}: expression {expression!r} is not valid ({exc.msg})") from None
    allowed_names = {"distance", *_EXPRESSION_FUNCTIONS, *_EXPRESSION_CONSTANTS}
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"{where}: expression {expression!r} uses {type(node).__name__}; only numbers, + - * / **, "
                             f"'distance' (µm from the soma) and {sorted(_EXPRESSION_FUNCTIONS)} are allowed")
        if isinstance(node, ast.Name) and node.id not in allowed_names:
            raise ValueError(f"{where}: expression {expression!r} uses unknown name {node.id!r}; allowed: 'distance' "
                             f"(µm from the soma), {sorted(_EXPRESSION_FUNCTIONS)}, {sorted(_EXPRESSION_CONSTANTS)}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _EXPRESSION_FUNCTIONS):
            raise ValueError(f"{where}: expression {expression!r} calls something other than {sorted(_EXPRESSION_FUNCTIONS)}")
        if isinstance(node, ast.Constant) and not is_real(node.value):
            raise ValueError(f"{where}: expression {expression!r} holds the non-number {node.value!r}")
    code = compile(tree, where, "eval")
    namespace = {"__builtins__": {}, **_EXPRESSION_FUNCTIONS, **_EXPRESSION_CONSTANTS}

    def value_at(distance_um: float) -> float:
        return float(eval(code, namespace, {"distance": float(distance_um)}))  # noqa: S307 - AST checked above

    value_at(0.0)  # fail now (e.g. log(0)) rather than inside a worker
    return value_at


def _validate_parameter(model_id: str, key: str, value: Any) -> None:
    if not isinstance(key, str) or key.count(".") != 1:
        raise ValueError(
            f"{model_id}: parameter key {key!r} must look like '<sectionlist>.<rangevar>' or 'global.<name>'"
        )
    where, name = key.split(".", 1)
    if isinstance(value, str):
        if where == "global" or name == "Ra":
            raise ValueError(f"{model_id}: parameter {key} is one number per {'process' if where == 'global' else 'section'}"
                             f"; a distance expression ({value!r}) applies only to range variables")
        distance_function(value, f"{model_id}: parameter {key}")
        return
    if not is_real(value):
        raise TypeError(f"{model_id}: parameter {key} must be a number or a distance expression (string), got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{model_id}: parameter {key} is {value}; parameters must be finite")
    if (name.startswith("g") or name.startswith("gbar")) and value < 0:
        raise ValueError(f"{model_id}: conductance {key} = {value} is negative; conductances must be >= 0 S/cm2")
    if name in ("cm", "Ra") and value <= 0:
        raise ValueError(f"{model_id}: {key} = {value} must be > 0 (cm in uF/cm2, Ra in Ohm·cm)")


@dataclass(frozen=True)
class CellSpec:
    """A detailed model: HoC template + constructor arguments + preloads + mechanisms + one parameter set.

    template_path: .hoc file defining `template_name`, or a loader file whose ``load_file`` calls
    define it; template_args: constructor arguments (strings, numbers), e.g. a morphology path;
    preload: hoc files loaded first, in order (a path, or a NEURON library file such as
    ``import3d.hoc``); mechanisms_dir: folder of .mod files (compiled and cached on first use)
    or None if the mechanisms are already loaded; parameters: see the module docstring.
    """

    model_id: str
    template_path: str
    template_name: str
    mechanisms_dir: str | None = None
    parameters: Mapping[str, float | str] = field(default_factory=dict)
    template_args: tuple = ()
    preload: tuple = ()

    def __post_init__(self) -> None:
        if not self.model_id or not isinstance(self.model_id, str):
            raise ValueError(f"model_id must be a non-empty string, got {self.model_id!r}")
        if not isinstance(self.parameters, Mapping):
            raise TypeError(f"parameters of {self.model_id} must be a mapping, got {type(self.parameters).__name__}")
        for key, value in self.parameters.items():
            _validate_parameter(self.model_id, key, value)
        # numbers as Python floats (numpy scalars included): specs travel as JSON (jobs, signatures, datasets)
        object.__setattr__(self, "parameters", {k: v if isinstance(v, str) else float(v) for k, v in self.parameters.items()})
        object.__setattr__(self, "template_args", tuple(self.template_args))
        object.__setattr__(self, "preload", tuple(str(p) for p in self.preload))
        for arg in self.template_args:
            if isinstance(arg, bool) or not isinstance(arg, (str, int, float)) or (
                    isinstance(arg, float) and not math.isfinite(arg)):
                raise TypeError(f"{self.model_id}: template argument {arg!r} must be a string or a finite number "
                                "(hoc constructors take $s / $ arguments)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "template_path": str(self.template_path),
            "template_name": self.template_name,
            "mechanisms_dir": None if self.mechanisms_dir is None else str(self.mechanisms_dir),
            "parameters": dict(self.parameters),
            "template_args": list(self.template_args),
            "preload": list(self.preload),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CellSpec":
        return cls(**{**d, "template_args": tuple(d.get("template_args", ())), "preload": tuple(d.get("preload", ()))})


# ---------------------------------------------------------------- provenance
def _existing_file(name: str, *folders: Path) -> Path | None:
    p = Path(name)
    for candidate in ([p] if p.is_absolute() else [Path.cwd() / p, *(f / p for f in folders)]):
        if candidate.is_file():
            return candidate
    return None


def loaded_files(spec: CellSpec) -> list[Path]:
    """Every file the model loads that exists on disk: template, preloads, file arguments of the
    constructor (a path, or a folder followed by a file name in it) and the hoc files these
    ``load_file``/``xopen`` (NEURON's own library files excluded)."""
    found: list[Path] = []
    todo = [Path(spec.template_path)] + [p for p in (_existing_file(x) for x in spec.preload) if p is not None]
    todo += [p for p in (_existing_file(a) for a in spec.template_args if isinstance(a, str)) if p is not None]
    args = list(spec.template_args)
    for folder, name in zip(args, args[1:]):  # (folder, file name) pairs, as BluePyOpt templates take them
        if isinstance(folder, str) and isinstance(name, str) and Path(folder).is_dir() and (Path(folder) / name).is_file():
            todo.append(Path(folder) / name)
    while todo:
        f = todo.pop(0).resolve()
        if f in found or not f.is_file():
            continue
        found.append(f)
        if f.suffix in (".hoc", ".ses", ".oc"):
            text = f.read_text(errors="replace")
            todo += [p for p in (_existing_file(n, f.parent) for n in _LOADS_RE.findall(text)) if p is not None]
    return found


def mod_sources_sha256(mod_dir: str | Path) -> str:
    """sha256 of a mechanisms folder's .mod sources (names and contents)."""
    digest = hashlib.sha256()
    for f in sorted(Path(mod_dir).glob("*.mod")):
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def model_provenance(spec: CellSpec) -> dict[str, Any]:
    """What determines the model's traces, by content: parameters, constructor arguments (files by
    their sha256), the sha256 of every file it loads and of its .mod sources. Paths are left out, so
    the same model moved elsewhere has the same provenance; an edited file changes it."""
    def arg(a):
        path = _existing_file(a) if isinstance(a, str) else None
        return f"file:{file_sha256(path)}" if path is not None else a

    files = sorted(file_sha256(f) for f in loaded_files(spec))
    return {
        "model_id": spec.model_id,
        "template_name": spec.template_name,
        "parameters": dict(spec.parameters),
        "template_args": [arg(a) for a in spec.template_args],
        "preload": [Path(p).name for p in spec.preload],
        "template_sha256": file_sha256(spec.template_path),
        "files_sha256": files,
        "mechanisms_sha256": mod_sources_sha256(spec.mechanisms_dir) if spec.mechanisms_dir else None,
    }


# ---------------------------------------------------------------- model files
def _resolve(value: str, folder: Path) -> str:
    """`value` as an absolute path when it names a file or folder relative to `folder`, else unchanged."""
    p = Path(value)
    if not p.is_absolute() and (folder / p).exists():
        return str((folder / p).resolve())
    return value


def load_model_file(path: str | Path, *, template: str | None = None, template_name: str | None = None,
                    mechanisms: str | None = None, template_args: Sequence | None = None,
                    preload: Sequence[str] | None = None) -> tuple[list[CellSpec], list[str | None]]:
    """(specs, splits) from a model JSON file or a folder of them (see the module docstring).

    Keyword arguments (the CLI's --template, --template-args, ...) fill in what the files leave out
    and override shared keys. A model without ``split`` gets None (see `assign_splits`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--models {path}: no such file or folder (or use 'family', 'family:train')")
    specs: list[CellSpec] = []
    splits: list[str | None] = []
    for f in sorted(path.glob("*.json")) if path.is_dir() else [path]:
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"model file {f} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "models" in data:
            shared = {k: v for k, v in data.items() if k not in ("models", "procedure")}
            entries = data["models"]
        else:
            shared, entries = {}, data
        entries = entries if isinstance(entries, list) else [entries]
        unknown = set(shared) - {"template", "template_name", "template_args", "preload", "mechanisms"}
        if unknown:
            raise ValueError(f"model file {f}: unknown shared key(s) {sorted(unknown)}; allowed: template, template_name, "
                             "template_args, preload, mechanisms, models, procedure (a record of how the file was made)")
        for e in entries:
            if not isinstance(e, dict) or "parameters" not in e:
                raise ValueError(f"model file {f}: every model needs a 'parameters' mapping (and a 'model_id')")
            unknown = set(e) - {"model_id", "parameters", "split", "template", "template_name", "template_args",
                                "preload", "mechanisms"}
            if unknown:
                raise ValueError(f"model file {f}: unknown key(s) {sorted(unknown)} in model {e.get('model_id')!r}")
            merged = {**shared, **{k: v for k, v in e.items() if k not in ("parameters", "split", "model_id")}}
            tpl = template or merged.get("template")
            name = template_name or merged.get("template_name")
            if tpl is None or name is None:
                raise ValueError(f"model file {f}: no template; give 'template' and 'template_name' in the file or "
                                 "--template <file.hoc> --template-name <Name>")
            mech = mechanisms or merged.get("mechanisms")
            args = list(template_args) if template_args is not None else list(merged.get("template_args", []))
            pre = list(preload) if preload is not None else list(merged.get("preload", []))
            if not isinstance(args, list) or not isinstance(pre, list):
                raise ValueError(f"model file {f}: template_args and preload must be lists")
            split = e.get("split")
            if split is not None and split not in SPLITS:
                raise ValueError(f"model file {f}: model {e.get('model_id')!r} has split {split!r}; use one of {SPLITS}")
            folder = f.parent
            specs.append(CellSpec(
                model_id=str(e.get("model_id", f"model_{len(specs):03d}")),
                template_path=_resolve(tpl, folder) if template is None else str(Path(tpl).resolve()),
                template_name=name,
                mechanisms_dir=None if mech is None else (_resolve(mech, folder) if mechanisms is None
                                                          else str(Path(mech).resolve())),
                parameters=e["parameters"],
                template_args=tuple(_resolve(a, folder if template_args is None else Path.cwd())
                                    if isinstance(a, str) else a for a in args),
                preload=tuple(_resolve(p, folder if preload is None else Path.cwd()) for p in pre),
            ))
            splits.append(split)
    if not specs:
        raise ValueError(f"--models {path}: no models found (a folder needs *.json files)")
    return specs, splits


def assign_splits(model_ids: Sequence[str], splits: Sequence[str | None], *, unseen: Sequence[str] | None = None,
                  unseen_fraction: float | None = None, seed: int = 0) -> list[str]:
    """The split of every model: ``unseen`` ids (or a seeded random ``unseen_fraction`` of the
    models) are held out, the rest train; with neither, each model's own split (None → "train")."""
    if unseen is not None and unseen_fraction is not None:
        raise ValueError("give either --unseen IDS or --unseen-fraction, not both")
    ids = list(model_ids)
    if unseen is not None:
        missing = sorted(set(unseen) - set(ids))
        if missing:
            raise ValueError(f"--unseen {missing}: no such model(s); models: {ids[:8]}{'…' if len(ids) > 8 else ''}")
        held = set(unseen)
    elif unseen_fraction is not None:
        if isinstance(unseen_fraction, bool) or not 0 <= unseen_fraction < 1:
            raise ValueError(f"--unseen-fraction must be in [0, 1), got {unseen_fraction!r}")
        n = int(round(unseen_fraction * len(ids)))
        held = set(np.asarray(ids)[np.random.default_rng(seed).permutation(len(ids))[:n]].tolist())
    else:
        return [s if s is not None else "train" for s in splits]
    out = ["unseen" if m in held else "train" for m in ids]
    if "train" not in out:
        raise ValueError("every model would be held out as unseen; keep at least one (better: most) for training")
    return out
