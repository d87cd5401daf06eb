"""Adding reference neurons to a whole-trace checkpoint (``noble-neuron add-references``).

The models of a dataset the checkpoint was not trained on (a population from ``noble-neuron build-population``)
are kept by their features and step trains (`noble_neuron.surrogate.references`), so that neurons given by
features borrow trains from a denser set of neighbours. No training: seconds per hundred models.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

__all__ = ["SHIPPED_FEATURE_PROTOCOL", "add_references"]

#: the amplitude protocol the shipped checkpoint's features were measured on (pv_draws48.h5: 48 draws per model)
SHIPPED_FEATURE_PROTOCOL = "train_draws_48"

log = logging.getLogger(__name__)


def add_references(checkpoint: str | Path, data_paths: list[str | Path], out_path: str | Path | None = None,
                   replace: bool = False, feature_protocol: str | None = None) -> Path:
    """Store every model of `data_paths` (datasets with a feature table) as a reference neuron of `checkpoint`
    and write it to `out_path` (default: in place). Refused: a model the checkpoint already knows (its training
    or held-out models: a held-out one would leak into its own benchmark), a dataset at another dt or without
    the checkpoint's features. `replace` drops the references already stored. `feature_protocol`: the per-model
    preset (`stimuli.presets.PER_MODEL_PRESETS`) the checkpoint's own features were measured on, on which the
    references' features are measured too (`features_on_protocol`; the shipped checkpoint's: `SHIPPED_FEATURE_PROTOCOL`);
    None: as the dataset's feature table has them (right when the references were simulated on that same protocol)."""
    from ..data.dataset import open_dataset
    from ..features.spikes import spike_times
    from ..surrogate.checkpoint import load_checkpoint, save_surrogate
    from ..surrogate.model import Surrogate
    from ..surrogate.references import fit_reference

    ckpt = load_checkpoint(checkpoint)
    s = Surrogate.from_metadata(dict(ckpt["metadata"]), ckpt["state_dict"], device="cpu")
    if not s.config.is_event_model:
        raise ValueError(f"{checkpoint} is not a whole-trace event model; only those borrow neighbours' step trains")
    names = list(s.config.feature_names)
    references = {} if replace else dict(s.references)
    held_out = {m for m, e in s.model_features.items() if e.get("split") == "unseen"}
    protocol = None
    if feature_protocol is not None:
        from ..stimuli.presets import PER_MODEL_PRESETS

        if feature_protocol not in PER_MODEL_PRESETS:
            raise ValueError(f"feature_protocol {feature_protocol!r} is not a per-model preset; choose one of "
                             f"{sorted(PER_MODEL_PRESETS)} or None")
        protocol = PER_MODEL_PRESETS[feature_protocol]
    templates = set()  # (name, sha256) of the templates the datasets' models ran on
    for path in data_paths:
        ds = open_dataset(path)
        templates.add((ds.attrs.get("template_name"), ds.attrs.get("template_sha256")))
        if abs(ds.dt_ms - s.dt_ms) > 1e-9:
            raise ValueError(f"{path} is sampled at {ds.dt_ms} ms, the checkpoint at {s.dt_ms} ms")
        table = ds.features()
        if not table:
            raise ValueError(f"{path} has no feature table; run `noble-neuron features --data {path}` first")
        missing = [n for n in names if n not in table["names"]]
        if missing:
            raise ValueError(f"{path}'s feature table lacks {missing}, which {checkpoint} uses; rerun "
                             f"`noble-neuron features --data {path}` with this version")
        known = sorted(set(ds.model_ids) & set(s.model_features))
        if known:
            leak = sorted(set(known) & held_out)
            raise ValueError(f"{path} holds models {known[:5]} that {checkpoint} already knows"
                             + (f", {leak[:5]} among its held-out models (as references they would leak into their "
                                f"own benchmark)" if leak else "") + "; references must be other neurons")
        cols = [table["names"].index(n) for n in names]
        rows = ds.rows(kind="long_square")
        skipped = 0
        for m, model_id in enumerate(ds.model_ids):
            feats = np.asarray(table["values"][m, cols], dtype=float)
            own = rows[ds.model_index[rows] == m]
            if not np.isfinite(feats).all() or own.size < 2:
                skipped += 1
                continue
            stim, volt = ds.read(own, "stimulus_nA"), ds.read(own, "voltage_mV")
            ref = fit_reference(stim, [spike_times(v, ds.dt_ms) for v in volt], ds.dt_ms, feats,
                                dict(ds.model_parameters[m]))
            if ref is not None and protocol is not None:
                ref.features = _on_protocol(names, ds, own, volt, ref.trains, protocol(m))
            if ref is None or not np.isfinite(ref.features).all():
                skipped += 1
                continue
            references[model_id] = ref
        log.info("%s: %d reference neurons (%d skipped: undefined features or fewer than 2 steps)", path,
                 len(ds.model_ids) - skipped, skipped)
    s.references = references
    # the domain (hull warnings, sample(source="hull")) becomes the training population's: models and references
    s.set_hull(np.stack([s.features_of(m) for m in s.train_model_ids if m in s.model_features]
                        + [r.features for r in references.values()]))
    s.metrics["references"] = {"n": len(references), "feature_protocol": feature_protocol,
                               "data": [Path(p).name for p in data_paths],
                               # the references' detailed models: their parameters run on this template
                               "template_name": next(iter(templates))[0] if len(templates) == 1 else None,
                               "template_sha256": next(iter(templates))[1] if len(templates) == 1 else None}
    return save_surrogate(s, out_path if out_path is not None else checkpoint)


def _on_protocol(names: list[str], ds, rows: np.ndarray, volt: np.ndarray, trains, protocol_steps: list) -> np.ndarray:
    """`features_on_protocol` for dataset rows of one model (Long Square steps of one delay and duration)."""
    import json

    from ..recordings.measure import features_on_protocol
    from ..stimuli.protocols import protocol_from_dict

    first = protocol_from_dict(json.loads(ds.protocols_json[ds.protocol_index[rows[0]]]))
    amps = np.array([p.step_nA for p in protocol_steps])
    try:
        return features_on_protocol(names, ds.amp_nA[rows], volt, trains, ds.dt_ms, amps, first.delay_ms,
                                    first.dur_ms)
    except ValueError as exc:  # it does not fire on the protocol's amplitudes
        log.warning("%s: no features on the checkpoint's protocol (%s)", ds.model_ids[ds.model_index[rows[0]]], exc)
        return np.full(len(names), np.nan)
