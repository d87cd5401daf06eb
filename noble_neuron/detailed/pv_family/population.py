"""A training population: hundreds of accepted PV parameter sets drawn around the HoF training models.

Procedure (reproducible with ``noble-neuron build-population --n-models 200 --seed 1 --out pop``):
1. Candidates are log-normal perturbations (σ = `spread`; e_pas additively, σ 2 mV) of the family's
   *training* models, taken in turn, clipped to the family's parameter bounds.
2. A candidate within `exclusion` of any held-out (unseen) family model is refused before it is
   simulated, so that no near-duplicate of a benchmark neuron enters training. Distance: Euclidean in
   normalised parameter space (log of positive parameters, linear for negative ones, each bound
   range mapped to [0, 1]); the default 0.45 is half the median distance from a HoF model to its
   nearest neighbour in the family (0.90; the closest unseen–training pair is 0.68 apart).
3. The rest are accepted with the family's own criterion (`family_builder.evaluate_parameters`:
   every target feature within `max_z` standard deviations on the four 200 ms steps).

Writes ``<out>/population.json``, a model file for ``--models`` (template, mechanisms and one entry per
accepted set, split "train"), with the procedure and every refusal counted.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import TEMPLATE_NAME, TEMPLATE_PATH, default_parameters, load_family, parameter_bounds
from ..mechanisms import default_mod_dir

__all__ = ["POPULATION_FILE", "build_population", "draw_candidates", "near_held_out", "nearest_distances",
           "normalised_parameters"]

log = logging.getLogger(__name__)

POPULATION_FILE = "population.json"
#: e_pas-like (negative) parameters are perturbed additively with this s.d. (mV)
ADDITIVE_SD_MV = 2.0


def _keys() -> list[str]:
    return sorted(parameter_bounds())


def normalised_parameters(parameter_sets: list[dict[str, float]]) -> np.ndarray:
    """(n, n_free) positions of parameter sets in the bounds' unit cube (log scale for positive parameters)."""
    bounds = parameter_bounds()
    keys = _keys()
    x = np.array([[float(p[k]) for k in keys] for p in parameter_sets], dtype=float)
    lo = np.array([bounds[k][0] for k in keys])
    hi = np.array([bounds[k][1] for k in keys])
    log_scale = lo > 0
    out = np.empty_like(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, log_scale] = (np.log(x[:, log_scale]) - np.log(lo[log_scale])) / np.log(hi[log_scale] / lo[log_scale])
    out[:, ~log_scale] = (x[:, ~log_scale] - lo[~log_scale]) / np.where(hi > lo, hi - lo, 1.0)[~log_scale]
    return out


def nearest_distances(points: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Each point's distance (normalised units) to its nearest reference."""
    return np.linalg.norm(points[:, None, :] - references[None, :, :], axis=2).min(axis=1)


def near_held_out(candidates: np.ndarray, held_out: list[dict[str, float]], exclusion: float) -> np.ndarray:
    """(n,) bool: which candidate free-parameter vectors (sorted keys) lie within `exclusion` of a held-out model."""
    keys = _keys()
    points = normalised_parameters([dict(zip(keys, c)) for c in candidates])
    return nearest_distances(points, normalised_parameters(held_out)) < exclusion


def draw_candidates(seeds: np.ndarray, n: int, spread: float, rng: np.random.Generator, start: int = 0) -> np.ndarray:
    """(n, n_free) perturbations of the seed parameter vectors (sorted keys), seeds taken in turn from `start`."""
    bounds = parameter_bounds()
    keys = _keys()
    lo = np.array([bounds[k][0] for k in keys])
    hi = np.array([bounds[k][1] for k in keys])
    out = []
    for i in range(start, start + n):
        base = seeds[i % len(seeds)]
        x = base * np.exp(spread * rng.standard_normal(base.size))
        neg = base < 0
        x[neg] = base[neg] + ADDITIVE_SD_MV * rng.standard_normal(int(neg.sum()))
        out.append(np.clip(x, lo, hi))
    return np.array(out)


def build_population(out_dir: str | Path, *, n_models: int = 200, seed: int = 1, spread: float = 0.25,
                     exclusion: float = 0.45, max_z: float = 2.5, max_candidates: int | None = None,
                     n_workers: int = 2, progress: bool = True, first_id: int = 0) -> dict:
    """Acceptance-sample `n_models` PV parameter sets around the family's training models (see module doc).

    Returns the index written to ``<out_dir>/population.json``. Raises if `max_candidates` (default
    6 × n_models) run out first, saying how many were accepted and refused for which reason. Models are named
    pop_NNNN from `first_id` (a second population with another seed: ``first_id=n_models``, ids stay distinct).
    """
    from tqdm import tqdm

    from .family_builder import evaluate_parameters

    if n_models < 1:
        raise ValueError(f"n_models must be >= 1, got {n_models}")
    if not 0 < spread <= 2:
        raise ValueError(f"spread is the s.d. of the log-normal perturbation, in (0, 2]; got {spread}")
    if first_id < 0:
        raise ValueError(f"first_id numbers the models (pop_NNNN) and must be >= 0, got {first_id}")
    if exclusion < 0:
        raise ValueError(f"exclusion is a distance in normalised parameter units (>= 0), got {exclusion}")
    max_candidates = 6 * n_models if max_candidates is None else max_candidates
    keys = _keys()
    family = load_family()
    train = [m for m in family if m.split == "train"]
    held_out = [dict(m.parameters) for m in family if m.split == "unseen"]
    seeds = np.array([[m.parameters[k] for k in keys] for m in train], dtype=float)
    rng = np.random.default_rng(seed)
    accepted: list[np.ndarray] = []
    refused = {"near_held_out": 0, "targets_missed": 0}
    tried = 0
    ctx = get_context("spawn")
    bar = tqdm(total=n_models, disable=not progress, desc="population", unit="model")
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
        while len(accepted) < n_models and tried < max_candidates:
            batch = draw_candidates(seeds, min(4 * n_workers, max_candidates - tried), spread, rng, tried)
            tried += len(batch)
            near = near_held_out(batch, held_out, exclusion)
            refused["near_held_out"] += int(near.sum())
            batch = batch[~near]
            scores = list(pool.map(evaluate_parameters, [list(c) for c in batch]))
            for c, s in zip(batch, scores):
                if max(s) <= max_z and len(accepted) < n_models:
                    accepted.append(c)
                    bar.update(1)
                elif max(s) > max_z:
                    refused["targets_missed"] += 1
    bar.close()
    if len(accepted) < n_models:
        raise RuntimeError(f"{len(accepted)} of {n_models} parameter sets accepted after {tried} candidates "
                           f"(refused: {refused}); raise max_candidates, or lower spread if most miss the targets")
    fixed = default_parameters()
    models = [{"model_id": f"pop_{first_id + i:04d}", "split": "train",
               "parameters": dict(fixed) | {k: float(v) for k, v in zip(keys, c)}} for i, c in enumerate(accepted)]
    index = {
        "template": str(TEMPLATE_PATH), "template_name": TEMPLATE_NAME, "mechanisms": str(default_mod_dir()),
        "procedure": {"seed": seed, "n_models": n_models, "first_id": first_id, "spread": spread, "exclusion": exclusion, "max_z": max_z,
                      "candidates": tried, "refused": refused, "seeds": [m.model_id for m in train],
                      "held_out": [m.model_id for m in family if m.split == "unseen"], "free_parameters": keys},
        "models": models,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / POPULATION_FILE).write_text(json.dumps(index, indent=1))
    log.info("population: %d accepted of %d candidates (refused %s) → %s", n_models, tried, refused,
             out_dir / POPULATION_FILE)
    return index
