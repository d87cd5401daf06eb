"""A recorded neuron beside its twins (PNG): FI curves, and how much the recording constrains each feature."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_twins"]


def plot_twins(neuron, twins, surrogate, path: str | Path, max_drawn: int = 20) -> Path:
    """Left: the recording's FI points (Hz over its steps) and its first `max_drawn` twins' FI curves (their
    step trains on a 5 pA grid; the best one in colour). Right: each feature's spread among the twins as a fraction
    of the population's (1: the recording leaves it free)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..surrogate.measured import counts_at
    from ..surrogate.references import train_sources

    ids, _, sources = train_sources(surrogate)
    by_id = dict(zip(ids, sources))
    dur = neuron.trains.dur_ms
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    for rank, tid in reversed(list(enumerate(twins.ids[:max_drawn]))):
        table = by_id[tid].trains
        grid = np.arange(table.amps_nA[0], table.amps_nA[-1] + 1e-9, 0.005)
        window = min(dur, table.dur_ms)
        rates = counts_at(table, grid, window) / (window * 1e-3)
        ax.plot(grid * 1e3, rates, color="tab:orange" if rank == 0 else "0.75", lw=2.0 if rank == 0 else 0.8,
                label=f"best twin {tid}" if rank == 0 else ("twins" if rank == 1 else None), zorder=3 if rank == 0 else 2)
    ax.plot(neuron.trains.amps_nA * 1e3, neuron.trains.counts / (dur * 1e-3), "ko", ms=4, label="recording", zorder=4)
    ax.set_xlabel("step amplitude (pA)")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(f"{neuron.source or 'recording'}: FI curve and {min(max_drawn, len(twins.ids))} of "
                 f"{len(twins.ids)} twins")
    ax.legend(frameon=False)
    names = [k for k, v in twins.spread.items() if v is not None]
    bx.barh(range(len(names)), [twins.spread[k] for k in names], color="tab:blue")
    bx.axvline(1.0, color="0.5", lw=0.8, ls="--")
    bx.set_yticks(range(len(names)), [k.replace("efel.", "") for k in names], fontsize=8)
    bx.set_xlabel("s.d. among twins / s.d. in the population")
    bx.set_title("pinned by the recording (< 1) or free (1)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
