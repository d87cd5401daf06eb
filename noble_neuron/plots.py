"""Figures of model families: FI curves and the (I_thr, s_thr) spread. matplotlib (Agg) only."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_fi_curves", "plot_feature_spread"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_COLORS = {"train": "tab:blue", "unseen": "tab:red"}


def plot_fi_curves(amps_nA: np.ndarray, rates_Hz: np.ndarray, splits: Sequence[str], path: str | Path,
                   title: str = "FI curves (400 ms Long Square)") -> Path:
    """One FI curve per model (rows of rates_Hz), coloured by split."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for m, split in enumerate(splits):
        a = amps_nA[m] if np.ndim(amps_nA) == 2 else amps_nA
        ax.plot(a * 1e3, rates_Hz[m], color=_COLORS.get(split, "gray"), alpha=0.6, lw=1)
    for split, color in _COLORS.items():
        if split in splits:
            ax.plot([], [], color=color, label=f"{split} ({list(splits).count(split)})")
    ax.set_xlabel("step amplitude (pA)")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(title)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_feature_spread(i_thr_nA: np.ndarray, s_thr: np.ndarray, splits: Sequence[str], path: str | Path) -> Path:
    """Scatter of threshold current vs FI slope at threshold, coloured by split."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.2))
    splits = np.asarray(splits)
    for split, color in _COLORS.items():
        sel = splits == split
        if sel.any():
            ax.scatter(i_thr_nA[sel] * 1e3, s_thr[sel], color=color, label=f"{split} ({sel.sum()})", s=22)
    ax.set_xlabel("I_thr (pA)")
    ax.set_ylabel("s_thr (Hz/nA)")
    ax.set_title("HoF family: threshold current vs FI slope")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
