"""The neuron_reduce baseline: hof_017 collapses to one cable per subtree and still fires like the detailed cell."""
import sys

import numpy as np
import pytest

from noble_neuron.baselines.neuron_reduce import ReducedCell
from noble_neuron.detailed.pv_family import get_model
from noble_neuron.features.spikes import spike_times_at

MODEL = "hof_017"
DETAILED_SEGMENTS, DETAILED_SECTIONS = 237, 45
DELAY_MS, DUR_MS, AMP_NA, TSTOP_MS = 150.0, 200.0, 0.3, 400.0


@pytest.fixture(scope="module")
def responses(h):
    """Spike times (ms) and rest (mV, mean of the 20 ms before the step) of each cell, one shared run."""
    cells = {"detailed": get_model(MODEL).instantiate(), "reduced": ReducedCell(MODEL),
             "one_compartment_per_section": ReducedCell(MODEL, max_segments_per_section=1)}
    t = h.Vector().record(h._ref_t)
    stims, traces = [], {}
    for name, cell in cells.items():
        stim = h.IClamp(cell.soma(0.5))
        stim.delay, stim.dur, stim.amp = DELAY_MS, DUR_MS, AMP_NA
        stims.append(stim)
        traces[name] = h.Vector().record(cell.soma(0.5)._ref_v)
    h.cvode_active(0)
    h.dt = 0.025
    h.finitialize(h.v_init)  # the model's -70 mV; the cells settle to ~-74.5 mV before the step
    h.continuerun(TSTOP_MS)
    t = np.array(t)
    before_step = (t > DELAY_MS - 20.0) & (t < DELAY_MS)
    out = {name: (spike_times_at(t, np.array(v)), float(np.array(v)[before_step].mean())) for name, v in traces.items()}
    return cells, out


def test_each_dendritic_subtree_becomes_one_cable(responses):
    cells, _ = responses
    reduced = cells["reduced"]
    # soma + 2 axon sections kept as they are; 6 subtrees leave the soma → 6 cables
    assert len(reduced.sections) == 1 + 2 + 6
    assert reduced.n_segments <= DETAILED_SEGMENTS // 4  # 33 measured (neuron_reduce's 0.1-lambda rule)
    assert reduced.model_id == MODEL
    assert reduced.soma.has_membrane("nn_NaT")  # the detailed soma, channels and all
    cable = next(sec for sec in reduced.sections if "dend" in sec.name())
    assert all(cable.has_membrane(m) for m in ("nn_NaT", "nn_Kv31", "nn_Ih"))  # dendritic channels mapped over


def test_reduced_cell_rests_and_fires_like_the_detailed_one(responses):
    """0.3 nA for 200 ms: 19 spikes each, rests -74.445 / -74.454 mV, first spike 153.77 / 153.58 ms.

    Cables without their channels fire 48 spikes; without dendritic Ih they rest 0.61 mV lower."""
    _, out = responses
    (spikes_d, rest_d), (spikes_r, rest_r) = out["detailed"], out["reduced"]
    assert len(spikes_d) >= 10  # the step drives sustained firing, else the comparison says little
    assert abs(len(spikes_r) - len(spikes_d)) <= 0.15 * len(spikes_d)
    assert abs(rest_r - rest_d) < 0.25
    assert abs(spikes_r[0] - spikes_d[0]) < 1.0


def test_coarsened_arm_caps_every_section_and_stays_close(responses):
    cells, out = responses
    full = cells["reduced"]
    three = ReducedCell(MODEL, max_segments_per_section=3)
    assert max(sec.nseg for sec in three.sections) == 3
    assert three.n_segments < full.n_segments  # 23 < 33 measured
    one = cells["one_compartment_per_section"]
    assert one.n_segments == len(one.sections) == len(full.sections)
    n_detailed, n_one = len(out["detailed"][0]), len(out["one_compartment_per_section"][0])  # 19, 20 measured
    assert abs(n_one - n_detailed) <= 0.15 * n_detailed


def test_a_given_detailed_cell_is_left_whole(h):
    detailed = get_model(MODEL).instantiate()
    reduced = ReducedCell(detailed, reduction_frequency_hz=100.0)
    assert len(list(detailed.soma.wholetree())) == DETAILED_SECTIONS
    assert sum(sec.nseg for sec in detailed.soma.wholetree()) == DETAILED_SEGMENTS
    assert reduced.soma != detailed.soma
    assert reduced.n_segments < DETAILED_SEGMENTS
    assert reduced.reduction_frequency_hz == 100.0


def test_the_patch_on_neuron_reduce_is_undone_after_reducing(h):
    from neuron_reduce import subtree_reductor_func

    ReducedCell(MODEL, max_segments_per_section=1)
    assert "dir" not in vars(subtree_reductor_func)


def test_a_deleted_reduced_cell_leaves_no_sections_behind(h):
    import gc

    before = len(list(h.allsec()))
    cell = ReducedCell(MODEL)
    assert len(list(h.allsec())) == before + len(cell.sections)
    del cell
    gc.collect()
    assert len(list(h.allsec())) == before


@pytest.mark.parametrize("args, kwargs, error, words", [
    ((MODEL,), {"reduction_frequency_hz": -1.0}, ValueError, ">= 0 Hz"),
    ((MODEL,), {"reduction_frequency_hz": float("nan")}, ValueError, ">= 0 Hz"),
    ((MODEL,), {"reduction_frequency_hz": "100"}, TypeError, "number (Hz)"),
    ((MODEL,), {"max_segments_per_section": 0}, ValueError, ">= 1"),
    ((MODEL,), {"max_segments_per_section": 2.5}, TypeError, "whole number"),
    (("hof_999",), {}, ValueError, "family model id"),
    ((17,), {}, TypeError, "DetailedCell"),
])
def test_bad_arguments_say_what_to_pass(args, kwargs, error, words):
    with pytest.raises(error) as info:
        ReducedCell(*args, **kwargs)
    assert words in str(info.value)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "neuron_reduce", None)
    with pytest.raises(ImportError, match="pip install neuron-reduce"):
        ReducedCell(MODEL)


def test_reductions_leave_no_axon_on_the_section_stack():
    """neuron_reduce pushes each axon to disconnect it and never pops: 400 cells ended in a stack overflow."""
    from neuron import h

    cells = [ReducedCell("hof_017") for _ in range(3)]
    assert all(c.n_segments < 60 for c in cells)
    try:
        current = h.cas().name()
    except RuntimeError:
        current = ""
    assert "axon" not in current, current
