"""Compile NMODL mechanisms once (cached by content hash) and load them once per process.

The cache key covers the .mod sources, the NEURON version, the platform and the Python
version, so a NEURON upgrade triggers a rebuild instead of loading an incompatible library.
Builds happen in a temporary folder under a file lock and are renamed into place
atomically, so concurrent workers never see a half-built library.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from ..errors import MechanismError  # noqa: F401 (raised here, defined in errors)

__all__ = [
    "MechanismError",
    "find_nrnivmodl",
    "default_mod_dir",
    "cache_root",
    "mechanism_names",
    "mod_hash",
    "build_mechanisms",
    "load_mechanisms",
]

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"\b(?:SUFFIX|POINT_PROCESS|ARTIFICIAL_CELL)\s+(\w+)")
_loaded_dirs: set[str] = set()


def default_mod_dir() -> Path:
    """The folder holding noble_neuron's own .mod files (repo checkout or installed copy)."""
    here = Path(__file__).resolve().parent.parent  # the noble_neuron package folder
    for candidate in (here.parent / "mod", here / "mod"):
        if any(candidate.glob("*.mod")):
            return candidate
    raise MechanismError(
        f"noble_neuron's .mod files were not found next to the package ({here}); "
        "reinstall noble_neuron (pip install -e .) so that mod/ is available"
    )


def cache_root() -> Path:
    """Where compiled mechanism libraries live: $NOBLE_NEURON_CACHE or ~/.cache/noble_neuron."""
    root = os.environ.get("NOBLE_NEURON_CACHE") or Path.home() / ".cache" / "noble_neuron"
    return Path(root) / "mechanisms"


def _mod_files(mod_dir: Path) -> list[Path]:
    mod_dir = Path(mod_dir)
    if not mod_dir.is_dir():
        raise MechanismError(f"mechanisms folder {mod_dir} does not exist; pass the folder holding your .mod files")
    files = sorted(mod_dir.glob("*.mod"))
    if not files:
        raise MechanismError(f"no .mod files in {mod_dir}; pass the folder holding your .mod files")
    return files


def mechanism_names(mod_dir: str | Path) -> list[str]:
    """Names (SUFFIX / POINT_PROCESS) that the .mod files of `mod_dir` define."""
    names = []
    for f in _mod_files(Path(mod_dir)):
        code = re.sub(r"COMMENT.*?ENDCOMMENT|:[^\n]*", "", f.read_text(errors="replace"), flags=re.DOTALL)
        names += _NAME_RE.findall(code)
    return names


def _neuron_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("neuron")
    except PackageNotFoundError:  # e.g. a NEURON built from source without wheel metadata
        import neuron

        return getattr(neuron, "__version__", "unknown")


def mod_hash(mod_dir: str | Path) -> str:
    """sha256 of the .mod sources plus NEURON/platform/Python versions (the cache key)."""
    digest = hashlib.sha256()
    for f in _mod_files(Path(mod_dir)):
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    env = f"{_neuron_version()}|{platform.system()}|{platform.machine()}|{sys.version_info[:2]}"
    digest.update(env.encode())
    return digest.hexdigest()


def _library_present(build_dir: Path) -> bool:
    return any(build_dir.glob("*/.libs/libnrnmech.so")) or any(build_dir.glob("*/libnrnmech.so"))


def find_nrnivmodl() -> str:
    """NEURON's nrnivmodl: the one beside the running Python first (the `neuron` wheel puts it there; a venv's
    interpreter run without activating the venv has it there but not on PATH), then PATH."""
    beside = Path(sys.executable).parent / "nrnivmodl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nrnivmodl")
    if found is None:
        raise MechanismError(f"nrnivmodl is neither beside this Python ({beside.parent}) nor on PATH; install NEURON "
                             "into this environment (pip install neuron) and gcc/make")
    return found


def build_mechanisms(mod_dir: str | Path | None = None, force: bool = False) -> Path:
    """Compile `mod_dir` with nrnivmodl into the cache (if not there yet); return the build folder."""
    mod_dir = Path(mod_dir) if mod_dir is not None else default_mod_dir()
    files = _mod_files(mod_dir)
    key = mod_hash(mod_dir)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / key[:16]
    with open(root / f"{key[:16]}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and not force and _library_present(target):
            return target
        nrnivmodl = find_nrnivmodl()
        tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root))
        try:
            src = tmp / "mod"
            src.mkdir()
            for f in files:
                shutil.copy2(f, src / f.name)
            log.info("compiling %d mechanisms from %s (nrnivmodl)", len(files), mod_dir)
            # its own folder first on PATH: the wheel's nrnivmodl calls its sibling tools by name
            env = {**os.environ, "PATH": os.pathsep.join([str(Path(nrnivmodl).parent), os.environ.get("PATH", "")])}
            proc = subprocess.run([nrnivmodl, "mod"], cwd=tmp, capture_output=True, text=True, env=env)
            if proc.returncode != 0 or not _library_present(tmp):
                raise MechanismError(
                    f"nrnivmodl failed for {mod_dir} (exit {proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
                )
            (tmp / "SOURCE").write_text(f"{mod_dir.resolve()}\n{key}\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_mechanisms(mod_dir: str | Path | None = None, force_build: bool = False) -> Path:
    """Build (cached) and load the mechanisms of `mod_dir` into this process, once.

    A folder may also hold an already compiled library (``x86_64/.libs/libnrnmech.so``)
    without .mod files; it is then loaded as is.
    """
    mod_dir = Path(mod_dir) if mod_dir is not None else default_mod_dir()
    if not any(mod_dir.glob("*.mod")) and _library_present(mod_dir):
        build_dir, names = mod_dir, []
    else:
        names = mechanism_names(mod_dir)
        build_dir = build_mechanisms(mod_dir, force=force_build)
    key = str(build_dir.resolve())
    if key in _loaded_dirs:
        return build_dir
    from neuron import h, load_mechanisms as nrn_load

    present = [n for n in names if hasattr(h, n)]
    if names and len(present) == len(names):
        # Already loaded in this process (e.g. NEURON auto-loaded a stray x86_64/ in the
        # working directory); loading a second library with the same names would abort.
        log.debug("mechanisms %s already present in NEURON; not loading %s", names, build_dir)
    elif present:
        raise MechanismError(
            f"mechanisms {present} from {mod_dir} are already defined by another loaded library; "
            "NEURON cannot load two libraries defining the same name. Remove stray x86_64/ folders "
            "from the working directory or rename the mechanisms."
        )
    elif not nrn_load(str(build_dir), warn_if_already_loaded=False):
        raise MechanismError(f"NEURON could not load the compiled mechanisms in {build_dir}")
    _loaded_dirs.add(key)
    return build_dir
