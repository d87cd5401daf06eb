"""The README's headline figures, rendered from the JSON files under benchmarks/results/.

    python benchmarks/headline.py            # print the table
    python benchmarks/headline.py --write    # replace the block between the markers in README.md

`tests/test_docs.py` fails when README.md does not hold exactly this table, so the prose cannot
drift from the measurements.
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- headline:start (python benchmarks/headline.py --write) -->", "<!-- headline:end -->"


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _measured_on(name: str, data: dict) -> str:
    """The date stored with the figures, else the date of the commit that last changed the file."""
    date = (data.get("machine") or {}).get("measured_on")
    if date:
        return date
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(RESULTS / name)], cwd=ROOT,
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or "undated"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f} %"


def _net_figures(net: dict) -> str:
    """'rate vs rate Hz, Γ, EV [AdEx: rate Hz, Γ, EV]' of a network benchmark JSON."""
    a = net.get("adex_baseline")
    own = (f"{net['rate_Hz_surrogate_mean']:.1f} vs {net['rate_Hz_detailed_mean']:.1f} Hz, "
           f"Γ {net['gamma_2ms_median']:.2f}, EV {net['psth_ev_10ms_median']:.2f}")
    return own + (f" [{a['rate_Hz_adex_mean']:.1f} Hz, Γ {a['gamma_2ms_median']:.2f}, EV {a['psth_ev_10ms_median']:.2f}]"
                  if a else "")


def _arm(r: dict, rate_d: float) -> str:
    if "error" in r:
        return "failed"
    return (f"Γ {r['gamma_2ms_median']:.2f}, {r['subthreshold_rmse_mV_median']:.2f} mV, {r['rate_Hz_mean']:.1f} vs "
            f"{rate_d:.1f} Hz, {r['speedup_vs_detailed']:.1f}×")


ARM_LABELS = (("hybrid", "**HybridCell**"), ("hybrid1", "HybridCell, 1 segment per section"), ("reduce", "neuron_reduce"), ("reduce3", "neuron_reduce ≤ 3 seg"),
              ("surrogate", "streaming surrogate"), ("adex", "AdEx"), ("gif", "GIF"))


def _arms_rows() -> list[tuple[str, str, str, str]]:
    """Rows of the per-arm network benchmarks (benchmarks/network_arms.py, benchmarks/gamma_network.py)."""
    rows = []
    drives = {"standard": "1200 Hz exc", "strong": "3000 Hz exc", "varied": "kinetics and weights in no training trace"}
    for path in sorted(RESULTS.glob("network_arms*.json")):
        net = _load(path.name)
        rate_d = net["detailed"]["rate_Hz_mean"]
        arms = "; ".join(f"{label}: {_arm(net['arms'][a], rate_d)}" for a, label in ARM_LABELS if a in net["arms"])
        if net["drive"] == "steps":  # Long Squares: the rate is the goal, spike timing drifts in every arm
            rows.append((f"network, {net['n_cells']} cells, Long Square steps of {(net['tstop_ms'] - 115) / 1000:g} s "
                         "(0.15/0.25/0.35 nA), each arm its own run: Γ (±2 ms), subthreshold RMSE, rate vs detailed, "
                         "speed-up", arms, "rate ≤ 5 %", path.name))
            continue
        rows.append((f"network, {net['n_cells']} cells, {net['tstop_ms'] / 1000:g} s, {drives.get(net['drive'], net['drive'])}"
                     f", each arm its own run: Γ (±2 ms), subthreshold RMSE, rate vs detailed, speed-up", arms,
                     "Γ ≥ 0.9, ≤ 0.3 mV, ≤ 5 %, ≥ 10× neuron_reduce's", path.name))
    for path in sorted(RESULTS.glob("gamma_network*.json")):
        g = _load(path.name)
        cells = "; ".join(f"{label}: {_gamma_arm(g['arms'][a])}" for a, label in (("detailed", "detailed"), *ARM_LABELS)
                          if a in g["arms"])
        rows.append((f"recurrent PV gamma network (ING), {g['n_cells']} cells: gamma peak, synchrony index, ISIs < 5 ms, "
                     f"speed-up", cells, "peak ± 3 Hz, synchrony ± 15 %, short ISIs within 2×", path.name))
    return rows


def _gamma_arm(r: dict) -> str:
    if "error" in r:
        return "not measured" if r["error"].startswith("not measured") else "failed"
    speed = f", {r['speedup_vs_detailed']:.1f}×" if r.get("speedup_vs_detailed", 1.0) != 1.0 else ""
    return f"{r['peak_Hz']:.0f} Hz, {r['synchrony_index']:.2f}, {100 * r['short_isi_fraction']:.1f} %{speed}"


def render() -> str:
    acc, speed = _load("accuracy.json"), _load("speedup.json")
    net20, net1k, offline = _load("network.json"), _load("network_1000cells.json"), _load("network_rollout.json")
    net100 = _load("network_100cells.json")
    machine = acc["machine"]
    rows = []
    quick = RESULTS / "quickstart.json"
    if quick.is_file():
        q = json.loads(quick.read_text())
        fi_err = sum(abs(a - b) for a, b in zip(q["fi_rates_Hz_surrogate"], q["fi_rates_Hz_detailed"])) / len(q["fi_amps_nA"])
        rows.append((f"the main command (`examples/quickstart.py`): {q['model']}, {q['step_nA']} nA step, spikes "
                     "surrogate vs detailed; FI-curve error", f"{q['spikes_surrogate']} vs {q['spikes_detailed']}; "
                     f"{fi_err:.1f} Hz over {len(q['fi_amps_nA'])} amplitudes", "equal; ≤ 3 Hz", "quickstart.json"))
    rows += [
        ("whole-trace: spike-count error on firing traces, training models at held-out amplitudes / unseen models "
         "[interpolation baseline]",
         f"{_pct(acc['spike_count_rel_error_firing_in_distribution'])} / "
         f"{_pct(acc['spike_count_rel_error_firing_unseen_models'])} "
         f"[{_pct(acc['spike_count_rel_error_firing_in_distribution_interpolation'])}]", "≤ 2 % / ≤ 8 %", "accuracy.json"),
        ("whole-trace: FI-curve error (mean over amplitudes), same groups [interpolation baseline]",
         f"{acc['fi_mean_abs_error_Hz_in_distribution']:.1f} Hz / {acc['fi_mean_abs_error_Hz_unseen_models']:.1f} Hz "
         f"[{acc['fi_mean_abs_error_Hz_in_distribution_interpolation']:.1f} Hz]", "≤ 1.5 Hz / ≤ 6 Hz", "accuracy.json"),
        ("whole-trace: unseen models given their measured FI curve (`fi_curve=`; every other amplitude measured, the "
         "others scored; counts from the curve, the pattern from the neighbours): spike-count error, FI-curve error "
         "[the same rows from features alone]",
         f"{_pct(acc['spike_count_rel_error_firing_unseen_models_fi_points'])}, "
         f"{acc['fi_mean_abs_error_Hz_unseen_models_fi_points']:.1f} Hz "
         f"[{_pct(acc['spike_count_rel_error_firing_unseen_models_fi_points_features_only'])}, "
         f"{acc['fi_mean_abs_error_Hz_unseen_models_fi_points_features_only']:.1f} Hz]", "≤ 8 %, ≤ 6 Hz",
         "accuracy.json"),
        ("whole-trace: unseen models given the spike trains of the same recorded steps (`step_trains=`): spike-count "
         "error, FI-curve error, Γ (±1 ms) median, relative L2",
         f"{_pct(acc['spike_count_rel_error_firing_unseen_models_recorded_trains'])}, "
         f"{acc['fi_mean_abs_error_Hz_unseen_models_recorded_trains']:.1f} Hz, "
         f"{acc['gamma_1ms_median_unseen_models_recorded_trains']:.2f}, "
         f"{_pct(acc['rel_l2_mean_unseen_models_recorded_trains'])}", "≤ 8 %, ≤ 6 Hz, ≥ 0.7, ≤ 8 %", "accuracy.json"),
        ("whole-trace: unseen models measured on the same steps with their voltage (`noble-neuron measure`, "
         "`SurrogateCell(neuron=...)`: its own backbone and action potential, as a recording or seconds of its "
         "detailed model give them): relative L2, spike-count error, Γ (±1 ms), RMSE below threshold / between "
         "spikes, AHP depth error",
         f"{_pct(acc['rel_l2_mean_unseen_models_own_cell'])}, "
         f"{_pct(acc['spike_count_rel_error_firing_unseen_models_own_cell'])}, "
         f"{acc['gamma_1ms_median_unseen_models_own_cell']:.2f}, "
         f"{acc['subthreshold_rmse_mV_median_unseen_models_own_cell']:.2f} / "
         f"{acc['interspike_rmse_mV_median_unseen_models_own_cell']:.2f} mV, "
         f"{_pct(acc['AHP_depth_rel_error_unseen_models_own_cell'])}",
         "≤ 8 % (NOBLE 11.7 %), ≤ 8 %, ≥ 0.7, ≤ 0.3 / ≤ 1 mV, ≤ 10 %", "accuracy.json"),
        ("whole-trace: spike timing Γ (±1 ms) median, same groups [interpolation baseline]",
         f"{acc['gamma_1ms_median_in_distribution']:.2f} / {acc['gamma_1ms_median_unseen_models']:.2f} "
         f"[{acc['gamma_1ms_median_in_distribution_interpolation']:.2f}]", "≥ 0.9 / ≥ 0.7", "accuracy.json"),
        ("whole-trace voltage, training models at held-out amplitudes: RMSE below threshold (whole trace / 20 ms after "
         "the step), between spikes (action potentials cut out); AHP depth error",
         f"{acc['subthreshold_rmse_mV_median_in_distribution']:.2f} / "
         f"{acc['after_step_rmse_mV_median_in_distribution']:.2f} mV, "
         f"{acc['interspike_rmse_mV_median_in_distribution']:.2f} mV; {_pct(acc['AHP_depth_rel_error_in_distribution'])}",
         "≤ 0.3 mV, ≤ 1 mV; ≤ 10 %", "accuracy.json"),
        ("whole-trace: spike timing, order-matched median, same groups",
         f"{acc['spike_time_error_order_matched_median_ms_in_distribution']:.2f} ms / "
         f"{acc['spike_time_error_order_matched_median_ms_unseen_models']:.1f} ms", "≤ 1 ms / ≤ 3 ms", "accuracy.json"),
        ("whole-trace: relative L2 of the voltage, same groups",
         f"{_pct(acc['rel_l2_in_distribution'])} / {_pct(acc['rel_l2_unseen_models'])}",
         "≤ 2 % / ≤ 8 % (NOBLE: 2.2 % / 11.7 %)", "accuracy.json"),
        ("whole-trace: first-AP width error (training models)", _pct(acc["AP1_width_rel_error_in_distribution"]),
         "≤ 10 % (NOBLE 27–33 %)", "accuracy.json"),
        ("speed: batched `predict` vs NEURON per trace, a training model's steps [through the network's spike phase, "
         "as any other current or a neuron given by features] / one SurrogateCell in a NEURON run (NEURON's own loop "
         "on a bare soma caps any one-cell run at the figure in brackets)",
         f"{speed['speedup_batched_cpu']:.0f}× [{speed['speedup_batched_cpu_network_spikes']:.0f}×] / "
         f"{speed['speedup_surrogate_cell_1cell_cpu']:.0f}× ({speed['speedup_ceiling_1cell_neuron_loop']:.0f}×)",
         "≥ 500× / ≥ 50×", "speedup.json"),
    ]
    strong, varied = _load("network_strong_drive.json"), _load("network_varied_drive.json")
    steps400, steps2s = _load("network_steps_400ms.json"), _load("network_steps_2000ms.json")
    rows += _arms_rows()
    for label, net, goal, name in (
            (f"network, {net20['n_cells']} cells ({net20['tstop_ms']:.0f} ms, 1200 Hz exc)", net20, "> 1×",
             "network.json"),
            (f"network, strong drive (3000 Hz exc; {strong['n_cells']} cells)", strong, "> 1×",
             "network_strong_drive.json"),
            (f"network, varied drive (kinetics and weights in no training trace; {varied['n_cells']} cells)", varied,
             "> 1×", "network_varied_drive.json"),
            (f"network, {net100['n_cells']} cells ({net100['tstop_ms']:.0f} ms)", net100, "≥ 20×",
             "network_100cells.json"),
            (f"network, {net1k['n_cells']} cells ({net1k['tstop_ms']:.0f} ms)", net1k, "≥ 50×",
             "network_1000cells.json")):
        rows.append((f"{label}, one shared run (the surrogate engine's time against the rest): speed-up; rate "
                     "surrogate vs detailed, Γ (±2 ms), PSTH EV; [fitted AdEx baseline]",
                     f"{net['speedup_end_to_end']:.1f}×; {_net_figures(net)}", f"{goal}; ≤ 10 %, Γ ≥ 0.8, EV ≥ 0.9",
                     name))
    for net, name in ((steps400, "network_steps_400ms.json"), (steps2s, "network_steps_2000ms.json")):
        rows.append((f"`network='streaming'` cells, Long Square steps of {net['input']['dur_ms'] / 1000:g} s (0.15–0.35 nA, "
                     f"{net['n_cells']} cells): rate surrogate vs detailed [fitted AdEx baseline]",
                     f"{net['rate_Hz_surrogate_mean']:.1f} vs {net['rate_Hz_detailed_mean']:.1f} Hz "
                     f"[{net['adex_baseline']['rate_Hz_adex_mean']:.1f} Hz]", "≤ 10 %", name))
    for kind, label in (("long_square", "steps"), ("ou_noise", "OU currents"), ("synaptic_barrage", "PSC barrages")):
        k = offline["per_kind"][kind]
        rows.append((f"network model offline, unseen models, {label}: rate surrogate vs detailed, Γ (±2 ms)",
                     f"{k['rate_Hz_surrogate_mean']:.1f} vs {k['rate_Hz_detailed_mean']:.1f} Hz, "
                     f"Γ {k['gamma_2ms_median']:.2f}", "≤ 10 %, Γ ≥ 0.9", "network_rollout.json"))
    curve = RESULTS / "learning_curve.json"
    if curve.is_file():
        lc = json.loads(curve.read_text())
        with_training = [r for r in lc["curve"] if r["training_models"]]
        rows.append(("unseen models from their features, as the reference neurons grow (the 50 training models + n "
                     "of an acceptance-sampled population, none near a held-out model; `noble-neuron add-references`): "
                     "spike-count error, FI-curve error at n = " + " / ".join(str(r["population_models"])
                                                                             for r in with_training),
                     " / ".join(f"{_pct(r['spike_count_rel_error_firing'])}, {r['fi_mean_abs_error_Hz']:.1f} Hz"
                                for r in with_training), "≤ 8 %, ≤ 6 Hz", "learning_curve.json"))
    needed = RESULTS / "sweeps_needed.json"
    if needed.is_file():
        sn = {r["sweeps"]: r["with_voltage"] for r in json.loads(needed.read_text())["curve"]}
        shown = [k for k in (8, 12, 16, 24) if k in sn]
        rows.append(("unseen models measured on k of their steps with voltage (`noble-neuron measure`; a fixed "
                     "protocol: 2 hyperpolarising, k − 2 evenly over 0–0.5 nA), scored on the others: spike-count "
                     "error, FI error, Γ (±1 ms), relative L2 at k = " + " / ".join(map(str, shown)),
                     " / ".join(f"{_pct(sn[k]['spike_count_rel_error_firing'])}, {sn[k]['fi_mean_abs_error_Hz']:.1f} Hz, "
                                f"{sn[k]['gamma_1ms_median']:.2f}, {_pct(sn[k]['rel_l2_mean'])}" for k in shown),
                     "≤ 8 %, ≤ 6 Hz, ≥ 0.7, ≤ 8 %", "sweeps_needed.json"))
        sampled = json.loads((RESULTS / "sampled_neurons.json").read_text())
        rows.append(("`SurrogateCell.sample(50)` (population neurons) vs the 10 unseen models: Wasserstein distance "
                     "in s.d. of rheobase, rate at 0.3 nA, largest jump [feature-hull blends; the training models]",
                     ", ".join(f"{sampled['population_vs_unseen'][k]:.2f}" for k in
                               ("rheobase_nA", "rate_at_300pA_Hz", "largest_jump_Hz"))
                     + " [" + ", ".join(f"{sampled['hull_vs_unseen'][k]:.2f}" for k in
                                        ("rheobase_nA", "rate_at_300pA_Hz", "largest_jump_Hz"))
                     + "; " + ", ".join(f"{sampled['training_vs_unseen'][k]:.2f}" for k in
                                        ("rheobase_nA", "rate_at_300pA_Hz", "largest_jump_Hz")) + "]",
                     "as the training models", "sampled_neurons.json"))
    twins = RESULTS / "twins.json"
    if twins.is_file():
        tw = json.loads(twins.read_text())["scores"]
        rows.append(("`noble-neuron twins`: the 10 unseen models recorded on half their steps, the best twin among the "
                     "checkpoint's 449 neurons scored on the other half: spike-count error, FI error with voltage / "
                     "from spike times only [nearest neuron in the 7 features]",
                     f"{_pct(tw['clean']['best']['spike_count_rel_error_firing'])}, "
                     f"{tw['clean']['best']['fi_mean_abs_error_Hz']:.1f} Hz / "
                     f"{_pct(tw['spike_times_only']['best']['spike_count_rel_error_firing'])}, "
                     f"{tw['spike_times_only']['best']['fi_mean_abs_error_Hz']:.1f} Hz "
                     f"[{_pct(tw['nearest_in_features']['best']['spike_count_rel_error_firing'])}, "
                     f"{tw['nearest_in_features']['best']['fi_mean_abs_error_Hz']:.1f} Hz]", "≤ 10 %, ≤ 8 Hz",
                     "twins.json"))
    family = RESULTS / "pipeline_family.json"
    if family.is_file():
        pf = json.loads(family.read_text())
        cmp_ = pf["same_data_comparison"]["pipeline_checkpoint"]
        out = pf["outside_the_plan"]
        rows.append((f"`build-surrogate` on the shipped family ({pf['models']} models, adaptive plan, rest found): wall "
                     "time; spike-count error inside each model's plan (training models / unseen); hof_017 at 0.3 nA, "
                     "above its plan", f"{pf['wall_s_total'] / 60:.0f} min; "
                     f"{_pct(cmp_['spike_count_rel_error_firing_in_distribution'])} / "
                     f"{_pct(cmp_['spike_count_rel_error_firing_unseen_models'])}; "
                     f"{out['pipeline_checkpoint_spikes']} vs {out['detailed_spikes']} spikes (now warned)",
                     "one command; ≤ 3 % / ≤ 10 %", "pipeline_family.json"))
    l5pc = RESULTS / "own_model_l5pc.json"
    if l5pc.is_file():
        pm = json.loads(l5pc.read_text())
        hl = pm["headline"]
        rows.append(("`build-surrogate` on a published L5 pyramidal cell (Hay et al. 2011, ModelDB 139653; 4 variants, "
                     "defaults, first try): wall time; spike-count error and relative L2, training variants at held-out "
                     "amplitudes / held-out variant", f"{pm['wall_s_end_to_end'] / 60:.0f} min; "
                     f"{_pct(hl['spike_count_rel_error_firing_in_distribution'])} / "
                     f"{_pct(hl['spike_count_rel_error_firing_unseen_models'])}, "
                     f"{_pct(hl['rel_l2_in_distribution'])} / {_pct(hl['rel_l2_unseen_models'])}",
                     "one command, first try", "own_model_l5pc.json"))
    dates = sorted({_measured_on(src, _load(src)) for *_, src in rows})
    head = (f"Measured on {machine['cpu']}, {machine['cpu_count']} CPU cores, no GPU "
            f"({', '.join(dates)}; NEURON {machine['neuron']}, torch {machine['torch']}). Misses are misses: "
            "see the goals column.\n\n| figure | measured | goal | `benchmarks/results/` |\n|---|---|---|---|\n")
    return head + "".join(f"| {a} | {b} | {c} | `{d}` |\n" for a, b, c, d in rows)


def readme_block(readme: str) -> str:
    i, j = readme.index(START) + len(START), readme.index(END)
    return readme[i:j].strip("\n") + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", action="store_true", help="write the table into README.md")
    args = p.parse_args()
    table = render()
    if not args.write:
        print(table, end="")
        return
    path = ROOT / "README.md"
    text = path.read_text()
    i, j = text.index(START) + len(START), text.index(END)
    path.write_text(text[:i] + "\n" + table + text[j:])


if __name__ == "__main__":
    main()
