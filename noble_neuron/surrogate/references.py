"""Reference neurons: detailed models the network never trained on, kept by their features and step trains.

A neuron given by its features (an unseen model, `features=`, `sample()`) fires under a step the blended
trains of its nearest neurons in feature space (`event_model.neighbour_step_train`). With the 50 training
models alone those neighbours are far apart; a population of hundreds of acceptance-sampled models
(`noble-neuron build-population`, simulated with `--protocol population_draws`) fills the space between them
at ~10 kB each, without retraining: `noble-neuron add-references` stores them in the checkpoint. The voltage
between spikes still comes from the training models' backbones; only the spike trains use the references.
Learning curve and the models × draws trade-off: benchmarks/results/learning_curve.json.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backbone import AFTER_STEP_FIRING_TOL_NA, after_step_firing, step_windows
from .step_trains import StepTrains, fit_step_trains

__all__ = ["ReferenceNeuron", "fit_reference", "references_from_json", "sample_references", "sources_fi_table",
           "train_sources"]


@dataclass
class ReferenceNeuron:
    """One reference neuron: raw features (in the checkpoint's order), its step trains, the step amplitudes (nA)
    after whose end it fired on (rebound, release from block) and its detailed model's parameters."""

    features: np.ndarray
    trains: StepTrains
    after_step_firing_nA: np.ndarray
    parameters: dict | None = None  # its detailed model's parameter set (as the dataset stored it), where known

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float64)
        self.after_step_firing_nA = np.asarray(self.after_step_firing_nA, dtype=np.float64)
        if self.features.ndim != 1 or not np.isfinite(self.features).all():
            raise ValueError("a reference neuron needs finite features (one value per checkpoint feature)")

    def fires_after_step(self, amp_nA: float) -> bool:
        """As `ModelBackbone.fires_after_step`: a step within `AFTER_STEP_FIRING_TOL_NA` fired after it ended."""
        return bool(np.any(np.abs(self.after_step_firing_nA - amp_nA) <= AFTER_STEP_FIRING_TOL_NA))

    def to_json(self) -> dict:
        params = {} if self.parameters is None else {
            "parameters": {k: float(f"{v:.9g}") if isinstance(v, float) else v for k, v in self.parameters.items()}}
        return {"features": self.features.tolist(), "trains": self.trains.to_json(),
                "after_step_firing_nA": self.after_step_firing_nA.tolist(), **params}

    @classmethod
    def from_json(cls, entry: dict) -> "ReferenceNeuron":
        return cls(np.asarray(entry["features"], float), StepTrains.from_json(entry["trains"]),
                   np.asarray(entry.get("after_step_firing_nA", []), float), entry.get("parameters"))


def fit_reference(stim_nA: np.ndarray, spikes_ms: list[np.ndarray], dt_ms: float,
                  features: np.ndarray, parameters: dict | None = None) -> ReferenceNeuron | None:
    """A reference neuron from its step currents (N, L) nA and spike times (ms) per trace (and its detailed
    model's `parameters`); None with fewer than two step amplitudes of one duration."""
    trains = fit_step_trains(stim_nA, spikes_ms, dt_ms)
    if trains is None:
        return None
    amp, _, end = step_windows(np.asarray(stim_nA, dtype=np.float64), dt_ms)
    return ReferenceNeuron(features, trains, after_step_firing(amp, end, spikes_ms), parameters)


def references_from_json(entries: dict | None) -> dict[str, ReferenceNeuron]:
    """{model id: ReferenceNeuron} from checkpoint metadata (or already built ones); None → {}."""
    return {str(k): v if isinstance(v, ReferenceNeuron) else ReferenceNeuron.from_json(v)
            for k, v in (entries or {}).items()}


def sample_references(references: dict[str, ReferenceNeuron], n: int, seed: int = 0) -> list[str]:
    """n distinct reference ids drawn at random (seeded): new neurons of the family as its acceptance-sampled
    population has them, abrupt stuttering-to-tonic jumps included (a blend of neighbours in feature space
    smooths them away: benchmarks/results/sampled_neurons.json)."""
    ids = sorted(references)
    if not ids:
        raise ValueError("this checkpoint carries no population neurons: add them (noble-neuron add-references) or "
                         "sample in feature space (source='hull')")
    if n > len(ids):
        raise ValueError(f"{n} neurons asked, the checkpoint carries {len(ids)} population neurons; ask for at most "
                         f"{len(ids)}, or sample in feature space (source='hull')")
    return [ids[i] for i in np.random.default_rng(seed).choice(len(ids), size=n, replace=False)]


def train_sources(surrogate) -> tuple[list[str], np.ndarray, list]:
    """(ids, raw features (M, F), sources) of every neuron whose step trains a feature-given neuron may
    borrow: the training models with trains (their backbones), then the reference neurons. Cached per surrogate
    (and per backbone/reference object: replacing one recomputes it)."""
    key = _sources_key(surrogate)
    cached = getattr(surrogate, "_train_sources", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    trained = [m for m in sorted(surrogate.backbones) if surrogate.backbones[m].trains is not None]
    refs = sorted(surrogate.references)
    sources = [surrogate.backbones[m] for m in trained] + [surrogate.references[m] for m in refs]
    feats = [surrogate.features_of(m) for m in trained] + [surrogate.references[m].features for m in refs]
    out = (trained + refs, np.array(feats, dtype=float).reshape(len(sources), -1), sources)
    surrogate._train_sources = (key, out)
    return out


def _sources_key(surrogate) -> tuple:
    return tuple((m, id(b)) for m, b in sorted(surrogate.backbones.items())) + \
        tuple((m, id(r), id(r.features)) for m, r in sorted(surrogate.references.items()))


def sources_fi_table(surrogate, thr: int) -> np.ndarray:
    """(M, 1 + len(FI_MULTIPLES)): the rheobase (nA, feature column `thr`) and FI points (Hz, from the step trains)
    of every neuron of `train_sources`, on which a neuron given its measured FI curve picks its neighbours. Chosen
    over the training models alone by leave-one-model-out on them (rates of every other amplitude given, 200
    population references): spike-count error 6.9 → 5.9 %, order-matched timing 1.26 → 1.08 ms. Cached."""
    from .measured import training_fi_rates

    found = train_sources(surrogate)
    _, points, sources = found
    cached = getattr(surrogate, "_fi_table", None)
    if cached is None or cached[0] is not found:  # train_sources returns the same object while nothing changed
        rates = training_fi_rates([src.trains for src in sources], list(points[:, thr]))
        cached = (found, np.column_stack([points[:, thr], rates]))
        surrogate._fi_table = cached
    return cached[1]
