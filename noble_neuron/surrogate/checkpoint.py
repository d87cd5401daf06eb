"""Self-describing surrogate checkpoints: one ``.pt`` file of weights + JSON metadata.

Layout (a plain dict, loadable with ``torch.load(weights_only=True)``; no pickled objects)::

    schema          "noble_neuron.checkpoint"
    schema_version  1
    metadata_json   JSON string: `Surrogate.metadata()` (config, dt, window, units,
                    amplitude range, feature scaler, hull points, training model ids,
                    metrics, package version)
    state_dict      {name: tensor} network weights

Training-resume checkpoints add ``optimizer``, ``scheduler``, ``epoch`` and ``rng`` entries
(and ``train_json``); `load_surrogate` ignores them.  Files are written to a temporary
name and renamed, so an interrupted save never leaves a truncated file under the final name.

Checkpoints written while network mode also had sliding-window models (among them the shipped
streaming one) carry their keys (`LEGACY_CONFIG_KEYS`, `LEGACY_METADATA_KEYS`);
`load_checkpoint` drops them where they agree with a streaming or whole-trace model and refuses
a real sliding-window checkpoint, naming its replacement.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .model import Surrogate
from ..errors import CheckpointError  # noqa: F401 (raised here, defined in errors)

__all__ = ["CHECKPOINT_SCHEMA", "CHECKPOINT_SCHEMA_VERSION", "LEGACY_CONFIG_KEYS", "LEGACY_METADATA_KEYS",
           "SHIPPED_CHECKPOINT", "SHIPPED_NETWORK_CHECKPOINT", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "save_surrogate", "load_surrogate", "default_surrogate", "without_legacy_keys"]

log = logging.getLogger(__name__)

CHECKPOINT_SCHEMA = "noble_neuron.checkpoint"
CHECKPOINT_SCHEMA_VERSION = 1
#: config keys of the removed sliding-window models, with the value a streaming model stored (whole-trace: False)
LEGACY_CONFIG_KEYS = {"sliding_window": True, "spike_head": True, "voltage_history": False,
                      "spike_label_half_width": None}
#: metadata keys of the removed sliding-window models; whole-trace models stored None for the first two
LEGACY_METADATA_KEYS = ("sliding_horizon_samples", "spike_template_mV", "spike_threshold", "spike_delay_samples")


def save_checkpoint(path: str | Path, metadata: dict, state_dict: dict[str, torch.Tensor], **extra: Any) -> Path:
    """Atomically write a checkpoint; ``extra`` entries (optimizer, epoch, ...) must be weights_only-safe."""
    path = Path(path)
    reserved = {"schema", "schema_version", "metadata_json", "state_dict"} & set(extra)
    if reserved:
        raise ValueError(f"extra checkpoint entries {sorted(reserved)} clash with reserved keys")
    payload = {
        "schema": CHECKPOINT_SCHEMA,
        "schema_version": CHECKPOINT_SCHEMA_VERSION,
        "metadata_json": json.dumps(metadata, sort_keys=True, allow_nan=False),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; returns its dict with ``metadata`` (parsed JSON) added."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with `noble-neuron train` or check the path")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError, zipfile.BadZipFile,
            KeyError, IndexError, AttributeError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated or not a safe weights file (torch.load failed: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); re-save or retrain it"
        ) from None
    if not isinstance(ckpt, dict) or "schema" not in ckpt:
        raise CheckpointError(f"{path} is a torch file but not a noble_neuron checkpoint (no 'schema' entry)")
    if ckpt["schema"] != CHECKPOINT_SCHEMA:
        raise CheckpointError(f"{path} has schema {ckpt['schema']!r}; expected {CHECKPOINT_SCHEMA!r}")
    version = ckpt.get("schema_version")
    if version != CHECKPOINT_SCHEMA_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint schema_version {version!r}; this noble_neuron "
            f"reads schema_version {CHECKPOINT_SCHEMA_VERSION}. Use a matching noble_neuron version or retrain."
        )
    for key in ("metadata_json", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{path} is missing the '{key}' entry (written by another tool?)")
    try:
        meta = json.loads(ckpt["metadata_json"])
    except (TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: metadata_json is not valid JSON ({exc})") from None
    ckpt["metadata"] = without_legacy_keys(meta, path) if isinstance(meta, dict) else meta
    return ckpt


def without_legacy_keys(meta: dict, source: str | Path = "checkpoint") -> dict:
    """Checkpoint metadata without the keys of removed sliding-window models (see module docstring).

    A sliding-window model (``sliding_window``, ``spike_head`` or ``voltage_history`` true, or a
    ``sliding_horizon_samples``, without ``streaming``) raises CheckpointError naming the
    replacement; legacy keys that contradict the model they sit in raise too.
    """
    config = meta.get("config")
    if not isinstance(config, dict):
        return meta
    streaming = config.get("streaming") is True
    legacy = {k: config[k] for k in LEGACY_CONFIG_KEYS if k in config}
    if not streaming and (any(legacy.get(k) is True for k in ("sliding_window", "spike_head", "voltage_history"))
                          or meta.get("sliding_horizon_samples") is not None):
        raise CheckpointError(
            f"{source} is a sliding-window network-mode checkpoint; sliding-window models were removed from "
            "noble_neuron. SurrogateCell(..., network=True) uses the streaming network checkpoint "
            f"({SHIPPED_NETWORK_CHECKPOINT.name}, shipped); train one of your own with "
            "`noble-neuron train --config streaming_cpu` (docs/network_mode.md)")
    wrong = [f"{k}={v!r}" for k, v in legacy.items()
             if LEGACY_CONFIG_KEYS[k] is not None and v != (LEGACY_CONFIG_KEYS[k] if streaming else False)]
    if not streaming:
        wrong += [f"{k}={meta[k]!r}" for k in LEGACY_METADATA_KEYS[:2] if meta.get(k) is not None]
    if wrong:
        raise CheckpointError(f"{source}: legacy sliding-window settings {', '.join(wrong)} contradict its "
                              f"{'streaming' if streaming else 'whole-trace'} model; the file was edited or is corrupt")
    clean = {k: v for k, v in meta.items() if k not in LEGACY_METADATA_KEYS}
    clean["config"] = {k: v for k, v in config.items() if k not in LEGACY_CONFIG_KEYS}
    return clean


def save_surrogate(surrogate: Surrogate, path: str | Path, **extra: Any) -> Path:
    """Write `surrogate` (weights + metadata) to `path`."""
    if not isinstance(surrogate, Surrogate):
        raise TypeError(f"expected a Surrogate, got {type(surrogate).__name__}")
    return save_checkpoint(path, surrogate.metadata(), surrogate.state_dict(), **extra)


def load_surrogate(path: str | Path, device: str | torch.device | None = None) -> Surrogate:
    """Load a `Surrogate` from a checkpoint (device: default CUDA if available, else CPU)."""
    ckpt = load_checkpoint(path)
    try:
        return Surrogate.from_metadata(ckpt["metadata"], ckpt["state_dict"], device=device)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: metadata or weights do not describe a valid surrogate ({type(exc).__name__}: {exc})"
        ) from None


#: The shipped default surrogate of the PV family (see README, "Shipped checkpoint").
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "pv_fno_cpu.pt"
#: The shipped streaming (network-mode) surrogate of the PV family.
SHIPPED_NETWORK_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "pv_fno_network.pt"
_default_surrogates: dict[str, Surrogate] = {}


def default_surrogate(checkpoint: str | Path | None = None) -> Surrogate:
    """The surrogate at `checkpoint` (default: the shipped one), loaded once per process and path."""
    path = str(Path(checkpoint if checkpoint is not None else SHIPPED_CHECKPOINT).resolve())
    if path not in _default_surrogates:
        _default_surrogates[path] = load_surrogate(path)
    return _default_surrogates[path]
