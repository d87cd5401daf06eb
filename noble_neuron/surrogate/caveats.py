"""Why a checkpoint's own recorded measurements say its output should not be trusted (`Surrogate.*_caveat`):
the texts SurrogateCell's AccuracyWarning shows."""
from __future__ import annotations

__all__ = ["closed_loop", "whole_trace"]


def closed_loop(surrogate) -> str | None:
    """Why this network (streaming) checkpoint's closed-loop accuracy is not validated, or None if it is.

    Reads ``metrics["closed_loop"]`` (written by benchmarks/network.py --record): the
    checkpoint counts as validated when that run met its targets (population rate within
    10 %, median coincidence Gamma >= 0.9)."""
    if not surrogate.is_streaming:
        return None
    cl = surrogate.metrics.get("closed_loop")
    if not cl:
        return "its closed-loop accuracy in a network has not been measured"
    if cl.get("population_rate_rel_diff", 1.0) <= 0.1 and cl.get("gamma_2ms_median", 0.0) >= 0.9:
        return None
    base = cl.get("adex_baseline")
    return (f"measured closed loop against the detailed twins ({cl.get('n_cells')} cells, synaptic drive): "
            f"firing rate {cl.get('rate_Hz_surrogate_mean', float('nan')):.1f} Hz vs "
            f"{cl.get('rate_Hz_detailed_mean', float('nan')):.1f} Hz detailed, spike coincidence Gamma "
            f"{cl.get('gamma_2ms_median', float('nan')):.2f}, subthreshold RMSE "
            f"{cl.get('subthreshold_rmse_mV_median', float('nan')):.1f} mV"
            + (f" (a fitted AdEx in the same run: {base['rate_Hz_adex_mean']:.1f} Hz, Gamma "
               f"{base['gamma_2ms_median']:.2f}, RMSE {base['subthreshold_rmse_mV_median']:.1f} mV)" if base else ""))


def whole_trace(surrogate, own_step_trains: bool = True) -> str | None:
    """Why this whole-trace checkpoint's spikes should not be trusted, from its own recorded evaluation
    (``metrics["evaluation"]``, written by ``noble-neuron evaluate --record``), or None (also when it was
    never evaluated). Flagged: spike-count error on firing traces above 10 %, firing mismatches above
    5 % or relative L2 above 15 % on held-out amplitudes of its training models; with
    ``own_step_trains=False`` (cells given by features, which blend neighbours) on its unseen models."""
    ev = surrogate.metrics.get("evaluation")
    if surrogate.is_streaming or not ev:
        return None
    suffix = "_in_distribution"
    if not own_step_trains and "spike_count_rel_error_firing_unseen_models" in ev:
        suffix = "_unseen_models"
    count = ev.get("spike_count_rel_error_firing" + suffix)
    mismatch = ev.get("firing_mismatch_rate" + suffix)
    rel = ev.get("rel_l2_mean" + suffix, ev.get("rel_l2" + suffix))
    bad = ((count is not None and count > 0.10) or (mismatch is not None and mismatch > 0.05)
           or (rel is not None and rel > 0.15))
    if not bad:
        return None
    parts = [f"{what} {100 * value:.0f} %" for what, value in (
        ("spike counts off by", count), ("firing mismatches", mismatch), ("relative L2", rel)) if value is not None]
    where = ("held-out step amplitudes of its training models" if suffix == "_in_distribution" else
             "its unseen models, which a neuron given by features is like")
    return f"measured on {where}: " + ", ".join(parts)
