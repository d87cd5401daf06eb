"""Thin setuptools shim: metadata and dependencies live here, behaviour in the package."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / "noble_neuron" / "_version.py").read_text(), version)

setup(
    name="noble_neuron",
    version=version["__version__"],
    description="Drop-in FNO surrogates of detailed NEURON cell models (NOBLE-style).",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["noble_neuron", "noble_neuron.*"]) + ["noble_neuron.mod"],
    # The NMODL sources live in the top-level mod/ folder; ship them inside the package
    # so a non-editable install can still compile them.
    package_dir={"noble_neuron.mod": "mod"},
    package_data={
        "noble_neuron.mod": ["*.mod"],
        "noble_neuron.detailed.pv_family": ["templates/*.hoc", "*.json", "hof/*.json"],
        "noble_neuron": ["configs/*.yaml", "checkpoints/*.pt"],
        "noble_neuron.baselines": ["*.json"],
    },
    install_requires=[
        "neuron>=9.0",
        "torch",
        "neuraloperator>=1.0",
        "numpy",
        "scipy",
        "h5py",
        "efel",
        "bluepyopt",
        "netpyne",
        "neuron-reduce>=0.0.7",  # the neuron_reduce baseline (noble_neuron.baselines.neuron_reduce)
        "tqdm",
        "pynwb",  # NWB current-clamp recordings (noble_neuron.recordings.readers)
        "neo",  # ABF and the other electrophysiology formats neo reads
        "matplotlib",
        "pyyaml",
    ],
    extras_require={"test": ["pytest", "hypothesis"]},
    entry_points={"console_scripts": ["noble-neuron=noble_neuron.cli:main"]},
)
