"""Mechanism compilation cache: compiled once per content hash, loaded once per process."""
import os
import subprocess
import sys
import textwrap

import pytest

from noble_neuron.detailed.mechanisms import MechanismError, build_mechanisms, mechanism_names, mod_hash

LEAK_MOD = textwrap.dedent("""
    : test-only leak current
    NEURON { SUFFIX nn_testleak  NONSPECIFIC_CURRENT i  RANGE g, e }
    UNITS { (mA) = (milliamp)  (mV) = (millivolt) }
    PARAMETER { g = 0.0001 (S/cm2)  e = -70 (mV) }
    ASSIGNED { v (mV)  i (mA/cm2) }
    BREAKPOINT { i = g * (v - e) }
""")

_LOAD_TWICE = textwrap.dedent("""
    import sys, time
    from noble_neuron.detailed.mechanisms import load_mechanisms
    t = time.perf_counter(); d1 = load_mechanisms(sys.argv[1]); t1 = time.perf_counter() - t
    d2 = load_mechanisms(sys.argv[1])
    from neuron import h
    s = h.Section(name="s"); s.insert("nn_testleak")
    print(d1 == d2, round(t1, 3), s(0.5).g_nn_testleak)
""")


@pytest.fixture()
def leak_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NOBLE_NEURON_CACHE", str(tmp_path / "cache"))
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "nn_testleak.mod").write_text(LEAK_MOD)
    return mod


def test_names_and_hash(leak_dir):
    assert mechanism_names(leak_dir) == ["nn_testleak"]
    h1 = mod_hash(leak_dir)
    (leak_dir / "nn_testleak.mod").write_text(LEAK_MOD.replace("0.0001", "0.0002"))
    assert mod_hash(leak_dir) != h1  # editing a .mod file invalidates the cache


def test_library_built_for_another_neuron_version_is_never_reused(leak_dir, monkeypatch):
    import noble_neuron.detailed.mechanisms as mech

    here = mod_hash(leak_dir)
    monkeypatch.setattr(mech, "_neuron_version", lambda: "8.2.4")
    assert mod_hash(leak_dir) != here  # another cache key → another build folder → a fresh nrnivmodl


def test_compiled_once_and_loaded_once_per_process(leak_dir):
    env = dict(os.environ)
    run = lambda: subprocess.run([sys.executable, "-c", _LOAD_TWICE, str(leak_dir)], env=env,
                                 capture_output=True, text=True, check=True).stdout.split()
    first = run()
    build_dir = build_mechanisms(leak_dir)
    stamp = (build_dir / "SOURCE").stat().st_mtime_ns
    second = run()
    assert first[0] == second[0] == "True" and float(first[2]) == 0.0001
    assert (build_dir / "SOURCE").stat().st_mtime_ns == stamp, "a second process must not recompile"
    assert float(second[1]) < 1.0 < float(first[1]) * 10  # cached load is fast


def test_forced_rebuild_replaces_library(leak_dir):
    build_dir = build_mechanisms(leak_dir)
    stamp = (build_dir / "SOURCE").stat().st_mtime_ns
    assert build_mechanisms(leak_dir, force=True) == build_dir
    assert (build_dir / "SOURCE").stat().st_mtime_ns != stamp


def test_bad_mechanism_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("NOBLE_NEURON_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MechanismError, match="does not exist"):
        build_mechanisms(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MechanismError, match="no .mod files"):
        build_mechanisms(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.mod").write_text("NEURON { SUFFIX nn_bad }\nBREAKPOINT { i = }\n")
    with pytest.raises(MechanismError, match="nrnivmodl failed"):
        build_mechanisms(broken)
