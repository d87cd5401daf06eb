"""Per-epoch resume checkpoints of both training loops: where they live, the settings they must match.

Every epoch writes ``<out>.resume`` (weights, optimizer, scheduler, epoch, RNG state and the
training state as JSON); a run with the same `settings_key` (``epochs`` may grow) continues
from it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..surrogate.checkpoint import load_checkpoint
from ..surrogate.config import SurrogateConfig

__all__ = ["resume_path", "resume_training", "settings_key"]

log = logging.getLogger(__name__)


def resume_training(rpath: Path, key: dict, model, opt, sched) -> tuple[int, dict]:
    """Load a resume file into model, optimizer, scheduler and torch's RNG; (epochs done, its train state).
    Refuses a file written with other settings or data."""
    ck = load_checkpoint(rpath)
    state = json.loads(ck["train_json"])
    if state["settings"] != key:
        raise ValueError(f"resume checkpoint {rpath} was written with other settings or data; "
                         "delete it or pass resume=False to start over")
    model.load_state_dict(ck["state_dict"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    torch.set_rng_state(ck["rng"]["torch"])
    log.info("resuming from %s at epoch %d", rpath, int(ck["epoch"]))
    return int(ck["epoch"]), state


def resume_path(out_path: str | Path) -> Path:
    """Where training keeps its per-epoch resume checkpoint for `out_path`."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".resume")


def settings_key(sc: SurrogateConfig, tc, dataset: dict) -> dict:
    """What a resume file must have been written with: model and training settings (`tc` a TrainConfig, any
    number of epochs) and the dataset's signature."""
    d = tc.to_dict()
    d.pop("epochs")  # a resumed run may train for longer
    return {"surrogate": sc.to_dict(), "train": d, "dataset_signature": dataset["signature"]}
