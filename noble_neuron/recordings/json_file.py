"""What `noble-neuron measure` and `noble-neuron twins` write: JSON files, written whole or not at all."""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["read_json", "write_json"]


def write_json(path: str | Path, entry: dict, indent: int | None = None) -> Path:
    """`entry` as JSON at `path` (folders made), through a temporary file: a crash leaves the old file or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(entry, indent=indent) + ("\n" if indent is not None else ""))
    tmp.replace(path)
    return path


def read_json(path: str | Path, command: str) -> dict:
    """The JSON at `path`; ValueError naming the `command` that writes such files when it is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc}); write it with {command}") from None
