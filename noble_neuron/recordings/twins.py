"""Twins of a recorded neuron: the neurons of a checkpoint's population that respond as the recording does.

A recording constrains some properties of a cell and leaves others free. So a recorded neuron (a `MeasuredNeuron`,
``noble-neuron measure``) gets a population of twins, not one point: the training models and reference neurons of
the checkpoint (`surrogate.references.train_sources`: each a detailed model simulated on its steps)
ranked by how far their responses lie from the recording's. The distance has two parts. The spike counts at the
recorded step amplitudes are compared on a Poisson-like scale: mean of (c_twin − c)² / (c + 1). The features the
recording measured (passive ones, AP width; not those filled from the training median) are compared in units of
the population's standard deviation, weighted by `FEATURE_WEIGHT`. Each twin fires its own step trains in a `SurrogateCell` (`from_twins`).
Their spread, against the whole population's, shows which properties the recording pins down.
Benchmark: benchmarks/twins.py -> benchmarks/results/twins.json.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .json_file import read_json, write_json

__all__ = ["Twins", "find_twins", "load_twins", "detailed_twins", "write_model_file", "FORMAT"]

FORMAT = "noble_neuron.twins/1"


@dataclass
class Twins:
    """A recorded neuron's twins, best first: ``ids`` (training models or reference neurons of ``checkpoint``),
    ``distances`` (the module's distance), ``weights`` (∝ exp(−distance²/2), summing to 1), ``features`` (n, F)
    raw in ``feature_names`` order, and ``spread`` {feature: s.d. among the twins / s.d. in the population}."""

    ids: list
    distances: np.ndarray
    weights: np.ndarray
    features: np.ndarray
    feature_names: list
    spread: dict = field(default_factory=dict)
    source: str = ""
    checkpoint: str = ""

    def to_json(self) -> dict:
        return {"format": FORMAT, "source": self.source, "checkpoint": self.checkpoint, "ids": list(self.ids),
                "distances": np.round(self.distances, 6).tolist(), "weights": np.round(self.weights, 6).tolist(),
                "feature_names": list(self.feature_names), "features": self.features.tolist(), "spread": self.spread}

    @classmethod
    def from_json(cls, entry: dict) -> "Twins":
        if entry.get("format") != FORMAT:
            raise ValueError(f"not a twins file ({FORMAT}): format {entry.get('format')!r}; write it with "
                             "noble-neuron twins")
        return cls(list(entry["ids"]), np.asarray(entry["distances"], float), np.asarray(entry["weights"], float),
                   np.asarray(entry["features"], float), list(entry["feature_names"]), dict(entry.get("spread", {})),
                   entry.get("source", ""), entry.get("checkpoint", ""))

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_json(), indent=1)


def load_twins(path: str | Path) -> Twins:
    """`Twins` from their JSON file (``noble-neuron twins``)."""
    return Twins.from_json(read_json(path, "noble-neuron twins"))


#: weight of the measured features' term against the spike counts' in the twin distance. Chosen on the 50 training
#: models as recordings (every other of their 48 steps, with voltage; themselves left out of the candidates; best twin
#: scored on the other steps): weight 0 / 0.1 / 0.3 / 1: count error 10.8 / 11.1 / 11.0 / 11.2 %, FI 4.8 / 4.9 /
#: 5.0 / 5.4 Hz, Γ(±2 ms) 0.12 / 0.12 / 0.13 / 0.13. Kept 0.3: nearly the counts' accuracy, and twins whose rest,
#: input resistance and sag are the recording's, not only its FI curve
FEATURE_WEIGHT = 0.3


def find_twins(neuron, surrogate, n: int = 50, feature_weight: float = FEATURE_WEIGHT,
               exclude: tuple = ()) -> Twins:
    """The `n` neurons of `surrogate`'s population (its training models with step trains and its reference
    neurons; not those in `exclude`) nearest to a `MeasuredNeuron` (see the module docstring for the distance)."""
    from ..surrogate.measured import common_window_ms, counts_at
    from ..surrogate.references import train_sources

    ids, points, sources = train_sources(surrogate)
    if not ids:
        raise ValueError("this checkpoint has no neurons with step trains to draw twins from (an event checkpoint "
                         "with backbones, ideally with reference neurons: noble-neuron add-references)")
    if n < 1:
        raise ValueError(f"twins: n must be >= 1, got {n}")
    trains = neuron.trains
    amps = trains.amps_nA[trains.amps_nA > 0]
    window = common_window_ms(trains, sources)  # counts over the steps' common length (a 1 s recording: 400 ms)
    counts = counts_at(trains, amps, window)
    # each candidate on the recorded amplitudes within its own (NaN beyond), none in common: no twin
    theirs = np.array([counts_at(src.trains, amps, window, clip=False) for src in sources], dtype=float)
    with np.errstate(invalid="ignore"):
        terms = (theirs - counts) ** 2 / (counts + 1.0)
    covered = np.isfinite(terms).sum(axis=1)
    d2 = np.where(covered > 0, np.nansum(np.nan_to_num(terms, nan=0.0), axis=1) / np.maximum(covered, 1), np.inf) \
        if amps.size else np.zeros(len(ids))
    names = list(surrogate.config.feature_names)
    measured = [i for i, name in enumerate(names) if name.startswith("efel.") and name not in neuron.filled]
    sd = np.std(points, axis=0)
    if measured:
        own = neuron.feature_vector(names)
        z = (points[:, measured] - own[measured]) / np.where(sd[measured] > 0, sd[measured], 1.0)
        d2 = d2 + feature_weight * np.mean(z ** 2, axis=1)
    d2[[i for i, x in enumerate(ids) if x in set(exclude)]] = np.inf
    order = np.argsort(d2)[:min(n, int(np.isfinite(d2).sum()))]
    if order.size == 0:
        raise ValueError("no candidate twin covers the recorded step amplitudes (or all were excluded); record steps "
                         "within the population's range, e.g. −0.11 to 0.5 nA for the shipped family")
    w = np.exp(-0.5 * (d2[order] - d2[order[0]]))
    twins = points[order]
    spread = {name: float(np.std(twins[:, i]) / sd[i]) if sd[i] > 0 else None for i, name in enumerate(names)}
    return Twins([ids[i] for i in order], np.sqrt(d2[order]), w / w.sum(), twins, names, spread, neuron.source)


def detailed_twins(twins: Twins, surrogate) -> list:
    """The twins' detailed models (`CellSpec`s, best first) where their parameters are known: the shipped family's
    models by id, reference neurons by the parameter sets stored with them when they ran on the family's template.
    Twins without either are left out."""
    from ..detailed import pv_family
    from ..detailed.mechanisms import default_mod_dir
    from ..detailed.spec import CellSpec, file_sha256

    family = {m.model_id: m for m in pv_family.load_family()}
    on_family_template = (surrogate.metrics.get("references") or {}).get("template_sha256") == \
        file_sha256(pv_family.TEMPLATE_PATH)
    specs = []
    for tid in twins.ids:
        ref = surrogate.references.get(tid)
        if ref is not None and ref.parameters is not None and on_family_template:
            specs.append(CellSpec(tid, str(pv_family.TEMPLATE_PATH), pv_family.TEMPLATE_NAME, str(default_mod_dir()),
                                  dict(ref.parameters)))
        elif ref is None and tid in family:
            specs.append(family[tid].cell_spec())
    return specs


def write_model_file(specs: list, path: str | Path) -> Path:
    """`specs` (one template) as a model file for ``--models`` (``noble-neuron generate``, `load_model_file`)."""
    if not specs:
        raise ValueError("no detailed twins to write: none of the twins has a known parameter set")
    first = specs[0]
    if any((s.template_path, s.template_name) != (first.template_path, first.template_name) for s in specs):
        raise ValueError("detailed twins on different templates cannot share one model file")
    entry = {"template": first.template_path, "template_name": first.template_name,
             "mechanisms": first.mechanisms_dir, "procedure": {"twins_of": "a recording (noble-neuron twins)"},
             "models": [{"model_id": s.model_id, "split": "train", "parameters": dict(s.parameters)} for s in specs]}
    return write_json(path, entry, indent=1)
