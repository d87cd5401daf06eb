"""Examples and benchmarks must not rot: run their --quick paths."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_family_features_example_quick(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "01_family_features.py"), "--quick",
                          "--out-dir", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert "train:" in out
    assert (tmp_path / "family_fi_curves.png").stat().st_size > 10_000
    assert (tmp_path / "family_feature_spread.png").stat().st_size > 10_000


def test_datagen_benchmark_quick():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "datagen.py"), "--quick"],
                         capture_output=True, text=True, check=True).stdout
    assert '"orchestration_overhead_serial"' in out
