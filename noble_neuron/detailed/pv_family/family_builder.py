"""Build the hall-of-fame (HoF) family with BluePyOpt: optimise, then acceptance-sample.

Procedure (reproducible with ``noble-neuron build-family --seed 1``):
1. The PV template is wrapped as a `bluepyopt.ephys` cell model whose free parameters are
   those of ``parameter_bounds.json`` (section-list conductances, leak, e_pas).
2. A short IBEA optimisation fits PV-typical targets on four Long Square steps (200 ms):
   resting potential and input resistance (−0.05 nA), silence at 0.04 nA, firing at 0.2
   and 0.35 nA with narrow (< 0.5 ms), tall APs, deep an AHP trough near the pre-stimulus baseline and little adaptation.
3. Acceptance sampling: log-normal perturbations (σ = `spread`) of the best individuals,
   clipped to the bounds, are kept when every target is within `max_z` standard deviations
   and the hard PV criteria hold (rheobase 40–350 pA bracket, AP width < 0.5 ms).
4. `n_models` accepted sets are chosen greedily for spread (farthest-point in normalised
   log-parameter space), shuffled with the seed, and split 50 train / 10 unseen.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import bluepyopt.ephys as ephys
import numpy as np

from . import TEMPLATE_NAME, TEMPLATE_PATH, default_parameters, parameter_bounds
from ...constants import SPIKE_THRESHOLD_MV

__all__ = ["FEATURE_TARGETS", "build_family", "evaluate_parameters"]

log = logging.getLogger(__name__)

STEP_DELAY_MS, STEP_DUR_MS, STEP_TOTAL_MS = 15.0, 200.0, 250.0

#: protocol name → (step amplitude nA, {eFEL feature: (target mean, target std)})
FEATURE_TARGETS: dict[str, tuple[float, dict[str, tuple[float, float]]]] = {
    "hyper": (-0.05, {"voltage_base": (-70.0, 3.0), "ohmic_input_resistance_vb_ssse": (140.0, 45.0)}),
    "sub": (0.04, {"Spikecount": (0.0, 0.3)}),
    "mid": (0.2, {"mean_frequency": (70.0, 35.0)}),
    "strong": (0.35, {
        "mean_frequency": (180.0, 60.0),
        "AP_width": (0.32, 0.08),
        "mean_AP_amplitude": (72.0, 10.0),
        "AHP_depth": (-4.0, 5.0),
        "adaptation_index2": (0.0, 0.05),
    }),
}


def _free_keys() -> list[str]:
    return sorted(parameter_bounds())


class TemplateCellModel(ephys.models.CellModel):
    """A bluepyopt CellModel whose cell is an instance of our HoC template."""

    def instantiate_morphology(self, sim=None):
        from ..mechanisms import load_mechanisms

        load_mechanisms()
        h = sim.neuron.h
        if not hasattr(h, TEMPLATE_NAME):
            h.load_file(str(TEMPLATE_PATH))
        self.icell = getattr(h, TEMPLATE_NAME)()

    def instantiate(self, sim=None):
        super().instantiate(sim)
        self.icell.geom_nseg()  # Ra/cm may have changed

    def destroy(self, sim=None):
        self.icell = None
        for param in self.params.values():
            param.destroy(sim=sim)


def _build_evaluator():
    fixed = default_parameters()
    bounds = parameter_bounds()
    params = []
    for key, value in fixed.items():
        where, name = key.split(".", 1)
        free = key in bounds
        kwargs = {"bounds": list(bounds[key])} if free else {"value": value, "frozen": True}
        if where == "global":
            params.append(ephys.parameters.NrnGlobalParameter(key, param_name=name, **kwargs))
        else:
            loc = ephys.locations.NrnSeclistLocation(where, seclist_name=where)
            params.append(ephys.parameters.NrnSectionParameter(key, param_name=name, locations=[loc], **kwargs))
    cell = TemplateCellModel("PVBasketOpt", morph=None, mechs=[], params=params)

    soma = ephys.locations.NrnSeclistCompLocation("soma", seclist_name="somatic", sec_index=0, comp_x=0.5)
    protocols, objectives = {}, []
    for pname, (amp, feats) in FEATURE_TARGETS.items():
        stim = ephys.stimuli.NrnSquarePulse(step_amplitude=amp, step_delay=STEP_DELAY_MS, step_duration=STEP_DUR_MS,
                                            location=soma, total_duration=STEP_TOTAL_MS)
        rec = ephys.recordings.CompRecording(name=f"{pname}.soma.v", location=soma, variable="v")
        protocols[pname] = ephys.protocols.SweepProtocol(pname, [stim], [rec], cvode_active=False)
        for fname, (mean, std) in feats.items():
            feat = ephys.efeatures.eFELFeature(
                f"{pname}.{fname}", efel_feature_name=fname, recording_names={"": f"{pname}.soma.v"},
                stim_start=STEP_DELAY_MS, stim_end=STEP_DELAY_MS + STEP_DUR_MS, exp_mean=mean, exp_std=std,
                threshold=SPIKE_THRESHOLD_MV, stimulus_current=amp,
            )
            objectives.append(ephys.objectives.SingletonObjective(feat.name, feat))
    calculator = ephys.objectivescalculators.ObjectivesCalculator(objectives)
    sim = ephys.simulators.NrnSimulator(dt=0.025, cvode_active=False)
    return ephys.evaluators.CellEvaluator(
        cell_model=cell, param_names=_free_keys(), fitness_protocols=protocols,
        fitness_calculator=calculator, sim=sim, isolate_protocols=False,  # the pool isolates
    )


_evaluator = None


def evaluate_parameters(values: list[float]) -> list[float]:
    """Objective z-scores (one per target feature) of a free-parameter vector (sorted keys)."""
    global _evaluator
    if _evaluator is None:
        _evaluator = _build_evaluator()
    return list(_evaluator.evaluate_with_lists(list(values)))


def _farthest_points(x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    chosen = [int(rng.integers(len(x)))]
    dist = np.linalg.norm(x - x[chosen[0]], axis=1)
    while len(chosen) < k:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return chosen


def build_family(
    out_dir: str | Path,
    *,
    n_models: int = 60,
    n_unseen: int = 10,
    seed: int = 1,
    offspring: int = 24,
    generations: int = 6,
    n_candidates: int = 240,
    spread: float = 0.35,
    max_z: float = 2.5,
    n_workers: int = 2,
) -> dict:
    """Optimise + acceptance-sample; write <out_dir>/hof_NNN.json and family.json. Returns the index."""
    import bluepyopt

    out_dir = Path(out_dir)
    keys = _free_keys()
    bounds = parameter_bounds()
    lo = np.array([bounds[k][0] for k in keys])
    hi = np.array([bounds[k][1] for k in keys])
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
        evaluator = _build_evaluator()
        opt = bluepyopt.optimisations.DEAPOptimisation(
            evaluator=evaluator, offspring_size=offspring, seed=seed, selector_name="IBEA",
            map_function=lambda f, xs: list(pool.map(evaluate_parameters, xs)),
        )
        pop, hof, _, _ = opt.run(max_ngen=generations)
        ranked = sorted(list(pop) + list(hof), key=lambda ind: max(ind.fitness.values))
        elite = [np.array(list(ind)) for ind in ranked[: max(4, len(ranked) // 4)]]
        log.info("optimisation done; best max-z %.2f", max(ranked[0].fitness.values))
        rng = np.random.default_rng(seed)
        candidates = []
        for i in range(n_candidates):
            base = elite[i % len(elite)]
            x = np.clip(base * np.exp(spread * rng.standard_normal(len(keys))), lo, hi)
            # parameters that may be negative (e.g. e_pas) are perturbed additively instead
            neg = base < 0
            x[neg] = np.clip(base[neg] + 2.0 * rng.standard_normal(neg.sum()), lo[neg], hi[neg])
            candidates.append(x)
        scores = list(pool.map(evaluate_parameters, [list(c) for c in candidates], chunksize=4))
    accepted = [c for c, s in zip(candidates, scores) if max(s) <= max_z]
    log.info("acceptance sampling: %d of %d candidates accepted", len(accepted), len(candidates))
    if len(accepted) < n_models:
        raise RuntimeError(
            f"only {len(accepted)} of {n_candidates} candidates met the targets (max z ≤ {max_z}); "
            f"increase n_candidates or max_z"
        )
    acc = np.array(accepted)
    span = np.where(hi > lo, hi - lo, 1.0)
    chosen = _farthest_points((acc - lo) / span, n_models, rng)
    rng.shuffle(chosen)
    fixed = default_parameters()
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = {}
    for rank, idx in enumerate(chosen):
        model_id = f"hof_{rank:03d}"
        params = dict(fixed) | {k: float(v) for k, v in zip(keys, acc[idx])}
        (out_dir / f"{model_id}.json").write_text(json.dumps({"model_id": model_id, "parameters": params}, indent=1))
        splits[model_id] = "unseen" if rank >= n_models - n_unseen else "train"
    index = {
        "template": TEMPLATE_NAME,
        "splits": splits,
        "procedure": {
            "seed": seed, "offspring": offspring, "generations": generations, "n_candidates": n_candidates,
            "spread": spread, "max_z": max_z, "accepted": len(accepted), "targets": FEATURE_TARGETS,
            "free_parameters": keys,
        },
    }
    (out_dir / "family.json").write_text(json.dumps(index, indent=1))
    return index
