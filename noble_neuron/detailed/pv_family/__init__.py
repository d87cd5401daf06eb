"""The shipped ground-truth family: a detailed PV basket-cell template + hall-of-fame parameter sets.

    >>> from noble_neuron.detailed.pv_family import load_family
    >>> family = load_family()                 # 60 models, split "train" (50) / "unseen" (10)
    >>> cell = family[0].instantiate()         # a NEURON cell; cell.soma is a Section

The template itself is plain HoC: ``h.load_file(str(TEMPLATE_PATH)); h.PVBasket()`` gives
the default cell, exactly as a user's own template would be used.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..spec import SPLITS, CellSpec

__all__ = [
    "TEMPLATE_PATH",
    "TEMPLATE_NAME",
    "FAMILY_DIR",
    "HofModel",
    "DetailedCell",
    "load_family",
    "get_model",
    "default_parameters",
    "parameter_bounds",
]

_HERE = Path(__file__).resolve().parent
TEMPLATE_PATH = _HERE / "templates" / "pv_basket.hoc"
TEMPLATE_NAME = "PVBasket"
FAMILY_DIR = _HERE / "hof"



def _mod_dir() -> str:
    from ..mechanisms import default_mod_dir

    return str(default_mod_dir())


def default_parameters() -> dict[str, float]:
    """The template's own default parameter vector ({"<seclist>.<rangevar>": value})."""
    return json.loads((_HERE / "default_parameters.json").read_text())


def parameter_bounds() -> dict[str, tuple[float, float]]:
    """Bounds of the free parameters varied when building the family."""
    return {k: tuple(v) for k, v in json.loads((_HERE / "parameter_bounds.json").read_text()).items()}


class DetailedCell:
    """A detailed model instantiated in NEURON, with the same face as SurrogateCell.

    `soma` is the soma Section, `hoc` the template object (all sections, SectionLists).
    """

    def __init__(self, spec: CellSpec):
        from ..instantiate import instantiate_cell, soma_section

        self.spec = spec
        self.model_id = spec.model_id
        self.hoc = instantiate_cell(spec)
        self.soma = soma_section(self.hoc)

    def __repr__(self) -> str:
        return f"DetailedCell({self.model_id!r})"


@dataclass(frozen=True)
class HofModel:
    """One hall-of-fame member: an id, its split ('train' or 'unseen') and its parameters."""

    model_id: str
    split: str
    parameters: Mapping[str, float] = field(repr=False)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"{self.model_id}: split must be one of {SPLITS}, got {self.split!r}")

    def cell_spec(self) -> CellSpec:
        """The CellSpec used by `simulate`/`generate` (shipped template + mod/ + parameters)."""
        return CellSpec(
            model_id=self.model_id,
            template_path=str(TEMPLATE_PATH),
            template_name=TEMPLATE_NAME,
            mechanisms_dir=_mod_dir(),
            parameters=dict(self.parameters),
        )

    def instantiate(self) -> DetailedCell:
        """Create this model in NEURON (mechanisms compiled/loaded on first use)."""
        return DetailedCell(self.cell_spec())


def load_family(split: str | None = None, family_dir: str | Path | None = None) -> list[HofModel]:
    """The hall-of-fame models (all, or only split 'train'/'unseen'), ordered by id."""
    family_dir = Path(family_dir) if family_dir is not None else FAMILY_DIR
    index_path = family_dir / "family.json"
    if not index_path.is_file():
        raise FileNotFoundError(
            f"{index_path} not found; build the family with `noble-neuron build-family`"
        )
    index = json.loads(index_path.read_text())
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    models = []
    for model_id, model_split in sorted(index["splits"].items()):
        if split is not None and model_split != split:
            continue
        data = json.loads((family_dir / f"{model_id}.json").read_text())
        models.append(HofModel(model_id=model_id, split=model_split, parameters=data["parameters"]))
    return models


def get_model(model_id: str) -> HofModel:
    """One model of the shipped family by id (e.g. 'hof_017')."""
    for m in load_family():
        if m.model_id == model_id:
            return m
    raise KeyError(f"no model {model_id!r} in the shipped family")
