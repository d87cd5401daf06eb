"""BluePyOpt cell models (how Allen all-active and BBP-style models are distributed) as CellSpecs.

    >>> specs = specs_from_bluepyopt(cell_model, {"m0": best_params, "m1": other}, "bpo_templates",
    ...                              mechanisms_dir="mechanisms")
    >>> generate(specs, RheobaseRelativeSteps(), "data.h5", v_init="auto")

Each parameter set is exported with BluePyOpt's own ``CellModel.create_hoc``: a HoC template
with the morphology loader (constructor arguments: morphology folder, file name), the
mechanisms per section list, the parameter values and the distance-dependent scalers
(``distribute_distance``) exactly as BluePyOpt instantiates them. Every template is named
``<model name>_<model id>`` because NEURON cannot redefine a template within one process.
BluePyOpt's global parameters (e.g. celsius) become ``global.*`` parameters of the spec.

BluePyOpt templates start with ``forall delete_section()``: instantiate them where no other
cell is needed (the datagen workers hold one cell at a time).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from .spec import CellSpec

__all__ = ["specs_from_bluepyopt"]

_HOC_NAME = re.compile(r"[^A-Za-z0-9_]")


def _global_parameters(cell_model, values: Mapping[str, float]) -> dict[str, float]:
    import bluepyopt.ephys as ephys

    out = {}
    for name, p in cell_model.params.items():
        if isinstance(p, ephys.parameters.NrnGlobalParameter):
            value = values.get(name, p.value)
            if value is None:
                raise ValueError(f"BluePyOpt global parameter {name!r} has no value (give it in the parameter set)")
            out[f"global.{p.param_name}"] = float(value)
    return out


def specs_from_bluepyopt(cell_model, parameter_sets: Mapping[str, Mapping[str, float]], out_dir: str | Path, *,
                         mechanisms_dir: str | Path | None = None) -> list[CellSpec]:
    """One CellSpec per parameter set (``{model_id: {parameter name: value}}``) of a
    ``bluepyopt.ephys.models.CellModel``; the templates are written to `out_dir`.

    ``mechanisms_dir``: the folder of the model's .mod files (None if they are built-in or
    already loaded). Parameters left free in the cell model must all be given."""
    import bluepyopt.ephys as ephys

    if not isinstance(cell_model, ephys.models.CellModel):
        raise TypeError(f"cell_model must be a bluepyopt.ephys.models.CellModel, got {type(cell_model).__name__}")
    morph = getattr(cell_model.morphology, "morphology_path", None)
    if morph is None or not Path(morph).is_file():
        raise ValueError(f"the cell model's morphology file {morph!r} does not exist")
    if not parameter_sets:
        raise ValueError("parameter_sets is empty: give {model_id: {parameter: value}}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    free = [n for n, p in cell_model.params.items() if not p.frozen]
    base = _HOC_NAME.sub("_", cell_model.name)
    specs, original_name = [], cell_model.name
    for model_id, values in parameter_sets.items():
        missing = sorted(set(free) - set(values))
        unknown = sorted(set(values) - set(cell_model.params))
        if missing or unknown:
            raise ValueError(f"{model_id}: parameter set {'misses free parameters ' + str(missing) if missing else ''}"
                             f"{' and ' if missing and unknown else ''}"
                             f"{'names unknown parameters ' + str(unknown) if unknown else ''}")
        name = f"{base}_{_HOC_NAME.sub('_', model_id)}"
        cell_model.name = name
        try:
            hoc = cell_model.create_hoc(dict(values), disable_banner=True)
        finally:
            cell_model.name = original_name
        path = out / f"{name}.hoc"
        if not path.is_file() or path.read_text() != hoc:  # unchanged files keep their content hash and mtime
            path.write_text(hoc)
        morph_path = Path(morph).resolve()
        specs.append(CellSpec(model_id=model_id, template_path=str(path.resolve()), template_name=name,
                              mechanisms_dir=None if mechanisms_dir is None else str(Path(mechanisms_dir).resolve()),
                              parameters=_global_parameters(cell_model, values),
                              template_args=(str(morph_path.parent), morph_path.name)))
    return specs
