"""01 — The shipped PV family: FI curves and the (I_thr, s_thr) spread of all 60 HoF models.

    python examples/01_family_features.py --data pv_train.h5     # from the full training dataset
    python examples/01_family_features.py --quick                # 3 models, 6 short steps (smoke test)

The full dataset comes from `noble-neuron generate --models family --protocol train --out pv_train.h5`.
Writes family_fi_curves.png and family_feature_spread.png next to this script (or to --out-dir).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from noble_neuron.features.table import extract_features
from noble_neuron.evaluation.plots import plot_feature_spread, plot_fi_curves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="dataset with Long Square rows (features are (re)computed and stored)")
    ap.add_argument("--quick", action="store_true", help="simulate a tiny dataset instead")
    ap.add_argument("--out-dir", default=str(Path(__file__).parent))
    args = ap.parse_args()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if args.quick or data is None:
            from noble_neuron.simulation.datagen import generate
            from noble_neuron.detailed.pv_family import load_family
            from noble_neuron.stimuli.presets import long_square_grid

            family = load_family()[:3]
            data = generate([m.cell_spec() for m in family],
                            long_square_grid([-0.1, 0.05, 0.15, 0.25, 0.35, 0.45], delay_ms=15, dur_ms=100, total_ms=130),
                            Path(tmp) / "quick.h5", splits=[m.split for m in family], progress=False)
        table = extract_features(data, progress=False)
    col = {n: i for i, n in enumerate(table["names"])}
    i_thr = table["values"][:, col["I_thr_nA"]]
    s_thr = table["values"][:, col["s_thr_Hz_per_nA"]]
    plot_fi_curves(table["fi_amps_nA"], table["fi_rates_Hz"], table["splits"], out_dir / "family_fi_curves.png")
    plot_feature_spread(i_thr, s_thr, table["splits"], out_dir / "family_feature_spread.png")
    for split in ("train", "unseen"):
        sel = np.asarray(table["splits"]) == split
        if sel.any():
            print(f"{split:>6}: {sel.sum()} models, I_thr {np.nanmin(i_thr[sel]) * 1e3:.0f}–{np.nanmax(i_thr[sel]) * 1e3:.0f} pA, "
                  f"s_thr {np.nanmin(s_thr[sel]):.0f}–{np.nanmax(s_thr[sel]):.0f} Hz/nA")
    print(f"wrote {out_dir / 'family_fi_curves.png'} and {out_dir / 'family_feature_spread.png'}")


if __name__ == "__main__":
    main()
