"""Shared rules for config dataclasses: mappings in, unknown keys rejected, YAML sections."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["checked_mapping", "yaml_section", "SECTIONS"]

#: top-level sections of a training YAML file (see noble_neuron/configs/*.yaml)
SECTIONS = ("model", "train")


def checked_mapping(cls: type, d: Any, extra_keys: tuple[str, ...] = ()) -> dict:
    """A copy of `d` after checking it is a mapping whose keys are fields of dataclass `cls`."""
    if not isinstance(d, dict):
        raise TypeError(f"a {cls.__name__} must be a mapping, got {type(d).__name__}")
    allowed = {f.name for f in dataclasses.fields(cls)} | set(extra_keys)
    unknown = set(d) - allowed
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return dict(d)


def yaml_section(path: str | Path, section: str) -> dict:
    """The `section` mapping of a YAML file with model:/train: sections, or the whole file if it has none."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path} must hold a mapping, got {type(d).__name__}")
    if any(k in SECTIONS for k in d):
        unknown = set(d) - set(SECTIONS)
        if unknown:
            raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; use {list(SECTIONS)}")
        return d.get(section) or {}
    return d
