"""The feature domain of a surrogate: which neurons it knows and where it may be trusted.

Each neuron is a point of raw per-model features (``config.feature_names``, e.g. I_thr nA,
s_thr Hz/nA, input resistance MΩ, …). The checkpoint stores the training models' points, the
scaler and the vertices of their convex hull (scaled space); `FeatureDomain` is the part of
`Surrogate` that looks neurons up, validates a user's feature values, tests hull membership
and draws new neurons uniformly inside the hull (NOBLE's latent sampling).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from .config import positive_int

__all__ = ["FeatureDomain", "hull_vertices"]

log = logging.getLogger(__name__)

#: a feature value more than this many times the training models' spread beyond their range is refused (a unit or
#: order mistake: 300 for an I_thr in nA); values merely outside the hull are predicted with a DomainWarning
ABSURD_SPANS = 10.0


#: a current beyond this many times the largest training amplitude is refused (a unit mistake: pA for nA)
ABSURD_CURRENT_FACTOR = 100.0


def refuse_absurd_current(peak_nA: np.ndarray, amp_range_nA: tuple[float, float]) -> None:
    """ValueError for inputs whose largest |current| (nA, per item) no neuron the checkpoint knows could take."""
    limit = ABSURD_CURRENT_FACTOR * max(abs(amp_range_nA[0]), abs(amp_range_nA[1]))
    bad = np.flatnonzero(np.asarray(peak_nA) > limit)
    if bad.size:
        raise ValueError(f"input current of {float(np.asarray(peak_nA)[bad[0]]):.4g} nA (items {bad[:5].tolist()}) is "
                         f"more than {ABSURD_CURRENT_FACTOR:g}× the largest amplitude this checkpoint was trained on "
                         f"({max(abs(a) for a in amp_range_nA):g} nA); currents are in nA (IClamp.amp = 0.3 is 300 pA)")


def hull_vertices(points_scaled: np.ndarray) -> np.ndarray:
    """The vertices of the convex hull of points (N, F) in scaled feature space: all distinct points where
    they are too few or degenerate (the hull test then falls back to their bounding box)."""
    hull = np.unique(np.asarray(points_scaled, dtype=float), axis=0)
    if hull.shape[0] > hull.shape[1]:
        from scipy.spatial import ConvexHull, QhullError

        try:
            hull = hull[ConvexHull(hull).vertices]
        except QhullError:
            pass
    return hull


class FeatureDomain:
    """Mixin of `Surrogate`: needs ``config`` (feature_names, scaled range), ``feature_scaler``,
    ``hull_points`` (H, F scaled), ``model_features`` ({id: {name: value}}) and ``_delaunay``."""

    def set_hull(self, features_raw: np.ndarray) -> None:
        """The domain becomes the convex hull of these neurons' raw features (N, F): the training models' and, once a
        checkpoint carries reference neurons, theirs too (the training population's hull)."""
        self.hull_points = hull_vertices(self.feature_scaler.transform(np.asarray(features_raw, dtype=float)))
        self._delaunay = None

    def _triangulation(self):
        """Delaunay triangulation of the hull vertices (scaled), or False where they are degenerate."""
        if self._delaunay is None:
            self._delaunay = False
            if self.hull_points.shape[0] > self.hull_points.shape[1]:
                from scipy.spatial import Delaunay, QhullError

                try:
                    self._delaunay = Delaunay(self.hull_points)
                except QhullError:
                    log.info("training features are degenerate (not full-dimensional); hull test uses their bounding box")
        return self._delaunay

    def in_hull(self, features: np.ndarray) -> np.ndarray:
        """(B,) bool: raw features (B, F) inside the convex hull of the training features (`set_hull`).

        Tested in scaled space with a Delaunay triangulation of the hull vertices. If
        the training features do not span F dimensions (too few or collinear models),
        falls back to their bounding box.
        """
        x = self.feature_scaler.transform(np.asarray(features, dtype=float))
        tol = 1e-6 * (self.config.scaled_high - self.config.scaled_low)  # absorbs float32 rounding of inputs
        tri = self._triangulation()
        if tri is False:
            lo, hi = self.hull_points.min(axis=0) - tol, self.hull_points.max(axis=0) + tol
            return np.all((x >= lo) & (x <= hi), axis=-1)
        return tri.find_simplex(x, tol=tol) >= 0

    def features_of(self, model_id: str) -> np.ndarray:
        """Raw features (F,) of a model of the training dataset, in ``config.feature_names`` order."""
        if model_id not in self.model_features:
            known = sorted(self.model_features)
            hint = (f"known ids: {known[:3]} … {known[-3:]}" if known else
                    "this checkpoint stores no per-model features; pass the features explicitly")
            raise KeyError(f"model {model_id!r} is not in this surrogate's training dataset; {hint}")
        entry = self.model_features[model_id]
        return np.array([entry[n] for n in self.config.feature_names], dtype=float)

    def feature_vector(self, features: Sequence[float] | Mapping[str, float]) -> np.ndarray:
        """Raw features (F,) from a user's values: a sequence in ``config.feature_names`` order, or a
        mapping {name: value} (order-free). Unknown names, missing names, a wrong count or non-finite
        values raise ValueError naming the checkpoint's feature set."""
        names = list(self.config.feature_names)
        if isinstance(features, Mapping):
            unknown = sorted(set(features) - set(names))
            missing = [n for n in names if n not in features]
            if unknown or missing:
                raise ValueError(
                    f"this checkpoint's feature set is {names}; "
                    + (f"unknown feature name(s) {unknown}" if unknown else "")
                    + ("; " if unknown and missing else "")
                    + (f"missing value(s) for {missing}" if missing else "")
                    + " (measure them with `noble-neuron features` on a few Long Square steps of your model)")
            values: Any = [features[n] for n in names]
        else:
            values = features
        try:
            f = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            f = np.full(0, np.nan)
        if f.shape != (len(names),) or not np.isfinite(f).all():
            raise ValueError(f"features must be {len(names)} finite numbers {names} (or a dict by name), "
                             f"got {features!r}")
        known = np.array([[e[n] for n in names] for e in self.model_features.values()],
                         dtype=float).reshape(-1, len(names))
        if known.shape[0]:
            lo, hi = known.min(axis=0), known.max(axis=0)
            span = np.maximum(hi - lo, 1e-12)
            absurd = (f < lo - ABSURD_SPANS * span) | (f > hi + ABSURD_SPANS * span)
            if absurd.any():
                bad = [f"{names[i]} = {f[i]:g} (training models {lo[i]:.4g} … {hi[i]:.4g})"
                       for i in np.flatnonzero(absurd)]
                raise ValueError(f"features {', '.join(bad)}: more than {ABSURD_SPANS:g}× the training models' spread "
                                 "beyond them, which no neuron of this family has; check the units (nA, Hz/nA, MΩ, mV, "
                                 "ms) and the order of the values")
        return f

    def sample_features(self, n: int, seed: int = 0) -> np.ndarray:
        """(n, F) raw feature vectors drawn uniformly inside the convex hull of the training features.

        Exact in any dimension: a simplex of the hull's Delaunay triangulation is chosen with
        probability ∝ its volume, then a point uniformly inside it (flat Dirichlet weights of its
        vertices), in scaled space. Degenerate hulls fall back to their bounding box. The same
        seed gives the same points.
        """
        n = positive_int("n", n)
        rng = np.random.default_rng(seed)
        tri = self._triangulation()
        if tri is False:
            lo, hi = self.hull_points.min(axis=0), self.hull_points.max(axis=0)
            return self.feature_scaler.inverse_transform(rng.uniform(lo, hi, size=(n, lo.size)))
        corners = tri.points[tri.simplices]  # (S, F+1, F)
        edges = corners[:, 1:, :] - corners[:, :1, :]
        volume = np.abs(np.linalg.det(edges))
        pick = rng.choice(len(volume), size=n, p=volume / volume.sum())
        weights = rng.dirichlet(np.ones(corners.shape[1]), size=n)
        return self.feature_scaler.inverse_transform(np.einsum("nk,nkf->nf", weights, corners[pick]))
