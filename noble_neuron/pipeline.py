"""From a user's detailed model to a SurrogateCell in one call: datagen → features → train → evaluate.

Every stage resumes: the dataset (`datagen.generate`), the training (``<checkpoint>.resume``)
and the report are kept in ``out_dir``; running the same command again after an interruption
continues where it stopped, and a finished stage is not run twice (delete ``pipeline.json``,
or the stage's output, to redo it; a changed split is applied to the dataset). ``out_dir`` ends up with::

    data.h5                 traces (and per-model rest, rheobase, features)
    surrogate.pt            the checkpoint: SurrogateCell(checkpoint=..., model_id=...)
    report/accuracy.json    measured accuracy (spike counts, timing, FI, AP shape) on held-out data
    report/*.png            traces and FI curves, detailed vs surrogate
    pipeline.json           what ran, how long each stage took, the headline figures
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Sequence

__all__ = ["build_surrogate", "load_train_configs", "DEFAULT_CONFIG"]

log = logging.getLogger(__name__)

#: 2 features, defined for any model that fires (`--config wt_features_rich`: the 7 of the shipped checkpoint)
DEFAULT_CONFIG = "wt_phase_smooth_amp"
HEADLINE = ("spike_count_rel_error_firing_in_distribution", "spike_count_rel_error_firing_unseen_models",
            "fi_mean_abs_error_Hz_in_distribution", "fi_mean_abs_error_Hz_unseen_models",
            "rel_l2_in_distribution", "rel_l2_unseen_models")


def load_train_configs(config: str | Path):
    """(SurrogateConfig, TrainConfig) from a preset name in noble_neuron/configs or a YAML file."""
    from .surrogate.model import SurrogateConfig
    from .training.train import TrainConfig

    path = Path(config)
    if not path.is_file():
        path = Path(__file__).parent / "configs" / f"{config}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"--config {config!r}: no such file and no preset of that name "
                                    f"(presets: {sorted(p.stem for p in path.parent.glob('*.yaml'))})")
    return SurrogateConfig.from_yaml(path), TrainConfig.from_yaml(path)


def build_surrogate(specs: Sequence, splits: Sequence[str | None] | None, out_dir: str | Path, *, protocols=None,
                    v_init: str | float = "auto", config: str | Path = DEFAULT_CONFIG, epochs: int | None = None,
                    max_minutes: float | None = 15.0, engine: str = "pool", n_workers: int | None = None,
                    device: str | None = None, progress: bool = True) -> dict:
    """Run the whole pipeline for `specs` (CellSpecs) into `out_dir`; return the pipeline.json dict.

    ``protocols``: as for `datagen.generate`; default `RheobaseRelativeSteps()` (24 Long Squares
    per model over −0.5 … 3 × its own rheobase). ``config``: training preset or YAML;
    ``max_minutes``: training budget (the shipped recipe used 15 min on 2 CPU cores)."""
    from .simulation.datagen import generate
    from .evaluation.evaluate import write_report
    from .features.table import extract_features
    from .stimuli.presets import RheobaseRelativeSteps
    from .training.train import train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data, checkpoint, report_dir = out / "data.h5", out / "surrogate.pt", out / "report"
    model_cfg, train_cfg = load_train_configs(config)  # fail on a bad config before hours of datagen
    if epochs is not None:
        train_cfg = dataclasses.replace(train_cfg, epochs=epochs)
    protocols = RheobaseRelativeSteps() if protocols is None else protocols
    state_path = out / "pipeline.json"
    previous = json.loads(state_path.read_text()) if state_path.is_file() else {}
    stages: dict[str, float] = dict(previous.get("stage_wall_s", {}))
    done = set(previous.get("stages_done", []))
    outputs = {"generate": data, "features": data, "train": checkpoint, "evaluate": report_dir / "accuracy.json"}

    def stage(name: str, n: int, fn, load):
        if name in done and outputs[name].exists() and name != "generate":
            log.info("[%d/4] %s: done in an earlier run (%s)", n, name, outputs[name].name)
            return load()
        log.info("[%d/4] %s", n, name)
        start = time.perf_counter()
        result = fn()
        stages[name] = round(time.perf_counter() - start, 2)
        done.add(name)
        state_path.write_text(json.dumps({**previous, "stage_wall_s": stages, "stages_done": sorted(done)}, indent=1))
        return result

    def stored_features():
        from .data.dataset import open_dataset

        ds = open_dataset(data)
        return {"model_ids": ds.model_ids, "splits": ds.model_splits}

    # generate always runs: on a finished dataset it only checks it and applies a changed split
    stage("generate", 1, lambda: generate(specs, protocols, data, splits=splits, n_workers=n_workers, engine=engine,
                                          progress=progress, v_init=v_init), lambda: None)
    table = stage("features", 2, lambda: extract_features(data, progress=progress), stored_features)
    metrics = stage("train", 3, lambda: train(data, model_cfg, train_cfg, checkpoint, progress=progress,
                                              max_minutes=max_minutes, device=device),
                    lambda: previous.get("train_metrics", {}))
    report = stage("evaluate", 4, lambda: write_report(checkpoint, data, report_dir, progress=progress, record=True),
                   lambda: json.loads(outputs["evaluate"].read_text()))
    train_ids = [m for m, s in zip(table["model_ids"], table["splits"]) if s == "train"]
    summary = {
        "models": len(specs),
        "splits": {"train": table["splits"].count("train"), "unseen": table["splits"].count("unseen")},
        "dataset": data.name,
        "checkpoint": checkpoint.name,
        "report": f"{report_dir.name}/accuracy.json",
        "stage_wall_s": stages,
        "stages_done": sorted(done),
        "train_metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
        "headline": {k: report.get(k) for k in HEADLINE},
        "usage": f"SurrogateCell(checkpoint={str(checkpoint)!r}, model_id={train_ids[0]!r})" if train_ids else None,
    }
    state_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
