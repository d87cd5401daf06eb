"""Fit the GIF baseline (`noble_neuron.baselines.gif`) to detailed models, each on its own OU-current responses.

Per model: the soma voltage of the detailed cell under three 3.3 s OU currents (`FIT_SEEDS`; 0.3 s of rest,
then 0.6 s segments from hyperpolarised to ~50 Hz firing: `simulation.dendrite_load.ou_training_current`) is
the fit's data; a fourth (`HELD_OUT_SEED`) is held out and scored (Γ ±2 ms, rates, subthreshold RMSE), so the
baseline's quality is known before it meets a network. ~40 s per model on one core.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .gif import SHIPPED_GIF_FITS, GIFParams, fit_gif, save_gif_fits, score_gif

__all__ = ["FIT_SEEDS", "HELD_OUT_SEED", "fit_family_gif", "fit_model_gif"]

FIT_SEEDS = (0, 2, 3)
HELD_OUT_SEED = 1
DT_MS = 0.025


def _responses(model: Any, seeds: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    from ..simulation.dendrite_load import SETTLE_MS, instantiate_model, ou_training_current, record_dendritic_current

    cell = instantiate_model(model)
    out = []
    for seed in seeds:
        current = ou_training_current(DT_MS, seed)
        v, _ = record_dendritic_current(cell, current, DT_MS, dendrites=False)
        skip = int(round(SETTLE_MS / DT_MS))  # the rest before the first segment: nothing to fit
        out.append((v[skip:], current[skip:]))
    return out


def fit_model_gif(model: Any) -> tuple[GIFParams, dict]:
    """Fit one detailed model (a family id or anything with ``.instantiate()``): its GIF and held-out scores."""
    traces = _responses(model, FIT_SEEDS + (HELD_OUT_SEED,))
    params = fit_gif(traces[:-1], DT_MS)
    v, i = traces[-1]
    return params, score_gif(params, v, i, DT_MS, skip_ms=100.0)


def _fit_in_fresh_process(model_id: str) -> tuple[dict, dict]:
    params, score = fit_model_gif(model_id)
    return params.to_dict(), score


def fit_family_gif(model_ids: Sequence[str], out: str | Path, workers: int = 1, report: str | Path | None = None
                   ) -> dict[str, GIFParams]:
    """Fit every model in its own process → `out` (JSON of parameters); held-out figures → `report`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        raise ValueError(f"--out {out}: give a .json file name in an existing folder")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        results = dict(zip(model_ids, pool.map(_fit_in_fresh_process, model_ids)))
    fits = {m: GIFParams.from_dict(p) for m, (p, _) in results.items()}
    command = (f"noble-neuron fit-gif --workers {workers}"
               + ("" if out.resolve() == SHIPPED_GIF_FITS else f" --out {out.name}")
               + (f" --report {Path(report).name}" if report else ""))
    save_gif_fits(fits, out, {"command": command, "fit_seeds": list(FIT_SEEDS), "held_out_seed": HELD_OUT_SEED})
    if report:
        from ..evaluation.machine import machine_info

        scores = {m: s for m, (_, s) in results.items()}
        summary = {k: float(np.median([s[k] for s in scores.values()]))
                   for k in ("gamma_2ms", "subthreshold_rmse_mV", "rate_Hz_detailed", "rate_Hz_gif")}
        payload = {"machine": machine_info(), "command": command, "wall_s": time.perf_counter() - start,
                   "what": "each model's GIF (deterministic threshold) on a held-out 3 s OU current (seed "
                           f"{HELD_OUT_SEED}) vs its detailed cell: median over models", "held_out": summary,
                   "per_model": scores}
        from ..recordings.json_file import write_json

        write_json(report, payload)
    return fits
