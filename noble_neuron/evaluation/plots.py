"""Figures of model families: FI curves and the (I_thr, s_thr) spread. matplotlib (Agg) only."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_fi_curves", "plot_feature_spread"]


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_COLORS = {"train": "tab:blue", "unseen": "tab:red", "sampled": "tab:green"}


def plot_fi_curves(amps_nA: np.ndarray | Sequence[np.ndarray], rates_Hz: np.ndarray | Sequence[np.ndarray],
                   splits: Sequence[str], path: str | Path, title: str = "FI curves (400 ms Long Square)") -> Path:
    """One FI curve per model, coloured by split; amps_nA is shared (1-D) or one array per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    shared = isinstance(amps_nA, np.ndarray) and amps_nA.ndim == 1
    for m, split in enumerate(splits):
        a = np.asarray(amps_nA if shared else amps_nA[m], dtype=float)
        r = np.asarray(rates_Hz[m], dtype=float)
        # a model's untested amplitudes are NaN in a shared grid (per-model draws): join the ones it was tested at
        ok = np.isfinite(a) & np.isfinite(r)
        alpha = 0.35 if split == "sampled" else 0.7
        ax.plot(a[ok] * 1e3, r[ok], color=_COLORS.get(split, "gray"), alpha=alpha, lw=1)
    for split, color in _COLORS.items():
        if split in splits:
            ax.plot([], [], color=color, label=f"{split} ({list(splits).count(split)})")
    ax.set_xlabel("step amplitude (pA)")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(title, fontsize=10)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_feature_spread(i_thr_nA: np.ndarray, s_thr: np.ndarray, splits: Sequence[str], path: str | Path) -> Path:
    """Scatter of threshold current vs FI slope at threshold, coloured by split."""
    plt = pyplot()
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


def plot_trace_comparison(t_ms: np.ndarray, pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
                          path: str | Path) -> Path:
    """Stacked panels of NEURON (black) vs surrogate (colour) voltage traces; pairs = (title, true, pred)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(pairs), 1, figsize=(8, 1.9 * len(pairs)), sharex=True, squeeze=False)
    for ax, (title, true, pred) in zip(axes[:, 0], pairs):
        ax.plot(t_ms, true, color="black", lw=0.8, label="NEURON")
        ax.plot(t_ms, pred, color="tab:orange", lw=0.8, alpha=0.85, label="surrogate")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("V (mV)")
    axes[0, 0].legend(frameon=False, fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("time (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_fi_comparison(curves: Sequence[dict], path: str | Path, given_curve: Sequence[dict] | None = None) -> Path:
    """FI curves of NEURON (solid) vs surrogate (dashed) per model; curves from evaluate_surrogate. With
    `given_curve`, a second panel: the same models given their measured FI curve (the other amplitudes)."""
    plt = pyplot()
    panels = [(curves, "unseen models: FI curves from their features")]
    if given_curve:
        panels.append((given_curve, "given their FI curve at every other amplitude"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, (group, title) in zip(axes[0], panels):
        colors = plt.cm.tab10(np.linspace(0, 1, max(len(group), 1)))
        for c, color in zip(group, colors):
            a = np.asarray(c["amps_nA"]) * 1e3
            ax.plot(a, c["rates_true_Hz"], color=color, lw=1.2)
            ax.plot(a, c["rates_pred_Hz"], color=color, lw=1.2, ls="--")
        ax.plot([], [], color="gray", label="NEURON")
        ax.plot([], [], color="gray", ls="--", label="surrogate")
        ax.set_xlabel("step amplitude (pA)")
        ax.set_title(title, fontsize=10)
        ax.legend(frameon=False)
    axes[0][0].set_ylabel("firing rate (Hz)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
