"""Machine/software description stored with every benchmark JSON."""
from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version


def machine_info() -> dict:
    def v(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import datetime

    return {
        "measured_on": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "neuron": v("neuron"),
        "torch": v("torch"),
        "noble_neuron": v("noble_neuron"),
    }
