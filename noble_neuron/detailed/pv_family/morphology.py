"""Deterministic generator for the synthetic PV basket-cell HoC template.

The ground-truth detailed model (``templates/pv_basket.hoc``) is produced by
:func:`write_template`.  The morphology is procedurally generated with a seeded
RNG (pure Python ``random.Random``), so regenerating always gives byte-identical
output.  Biophysical defaults live in :data:`DEFAULT_PARAMETERS` and are written
both into the template and into ``default_parameters.json``.

Regenerate with::

    python -m noble_neuron.detailed.pv_family.morphology
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

SEED = 20240611
N_PRIMARY = 6

# Default parameter vector: "<seclist>.<rangevar>" -> value (global.* are hoc globals)
DEFAULT_PARAMETERS: dict[str, float] = {
    "global.celsius": 34.0,
    "global.v_init": -70.0,
    # --- soma -------------------------------------------------------------
    "somatic.cm": 1.0,
    "somatic.Ra": 100.0,
    "somatic.g_pas": 8.5e-05,
    "somatic.e_pas": -70.0,
    "somatic.ena": 53.0,
    "somatic.ek": -107.0,
    "somatic.gbar_nn_NaT": 0.35,
    "somatic.vshiftm_nn_NaT": -8.0,
    "somatic.gbar_nn_NaP": 5e-05,
    "somatic.gbar_nn_Kv31": 1.5,
    "somatic.gbar_nn_KT": 0.005,
    "somatic.gbar_nn_KP": 0.0005,
    "somatic.gbar_nn_SK": 0.0001,
    "somatic.gbar_nn_Ih": 5e-05,
    "somatic.ehcn_nn_Ih": -45.0,
    "somatic.gbar_nn_CaHVA": 0.0005,
    "somatic.gbar_nn_CaLVA": 0.002,
    "somatic.gamma_nn_CaDyn": 0.05,
    "somatic.decay_nn_CaDyn": 80.0,
    "somatic.depth_nn_CaDyn": 0.1,
    "somatic.minCai_nn_CaDyn": 0.0001,
    # --- axon (AIS + stub) --------------------------------------------------
    "axonal.cm": 1.0,
    "axonal.Ra": 100.0,
    "axonal.g_pas": 8.5e-05,
    "axonal.e_pas": -70.0,
    "axonal.ena": 53.0,
    "axonal.ek": -107.0,
    "axonal.gbar_nn_NaT": 1.5,
    "axonal.vshiftm_nn_NaT": -8.0,
    "axonal.gbar_nn_NaP": 0.0001,
    "axonal.gbar_nn_Kv31": 2.0,
    "axonal.gbar_nn_KT": 0.01,
    "axonal.gbar_nn_KP": 0.001,
    "axonal.gbar_nn_SK": 0.0001,
    "axonal.gbar_nn_CaHVA": 0.0005,
    "axonal.gbar_nn_CaLVA": 0.002,
    "axonal.gamma_nn_CaDyn": 0.05,
    "axonal.decay_nn_CaDyn": 80.0,
    "axonal.depth_nn_CaDyn": 0.1,
    "axonal.minCai_nn_CaDyn": 0.0001,
    # --- aspiny dendrites ------------------------------------------------------
    "basal.cm": 1.0,
    "basal.Ra": 100.0,
    "basal.g_pas": 8.5e-05,
    "basal.e_pas": -70.0,
    "basal.ena": 53.0,
    "basal.ek": -107.0,
    "basal.gbar_nn_NaT": 0.01,
    "basal.vshiftm_nn_NaT": -8.0,
    "basal.gbar_nn_Kv31": 0.02,
    "basal.gbar_nn_Ih": 5e-05,
    "basal.ehcn_nn_Ih": -45.0,
}

# Mechanisms per region (order of insertion)
REGION_MECHS = {
    "somatic": ["pas", "nn_NaT", "nn_NaP", "nn_Kv31", "nn_KT", "nn_KP", "nn_SK",
                "nn_Ih", "nn_CaHVA", "nn_CaLVA", "nn_CaDyn"],
    "axonal": ["pas", "nn_NaT", "nn_NaP", "nn_Kv31", "nn_KT", "nn_KP", "nn_SK",
               "nn_CaHVA", "nn_CaLVA", "nn_CaDyn"],
    "basal": ["pas", "nn_NaT", "nn_Kv31", "nn_Ih"],
}


def _unit(v):
    n = math.sqrt(sum(c * c for c in v))
    return [c / n for c in v]


def _perturb(rng, d, max_angle_deg):
    """Rotate unit vector d by a random angle up to max_angle_deg."""
    while True:
        r = [rng.uniform(-1, 1) for _ in range(3)]
        # component of r orthogonal to d
        dot = sum(a * b for a, b in zip(r, d))
        o = [a - dot * b for a, b in zip(r, d)]
        if math.sqrt(sum(c * c for c in o)) > 1e-3:
            break
    o = _unit(o)
    ang = math.radians(rng.uniform(0.3, 1.0) * max_angle_deg)
    return _unit([math.cos(ang) * a + math.sin(ang) * b for a, b in zip(d, o)])


def _section_points(rng, start, direction, length, d0, d1, npts=5):
    pts = [list(start) + [d0]]
    p = list(start)
    d = direction
    step = length / (npts - 1)
    for i in range(1, npts):
        d = _perturb(rng, d, 12.0)
        p = [a + step * b for a, b in zip(p, d)]
        diam = d0 + (d1 - d0) * i / (npts - 1)
        pts.append(p + [diam])
    return pts, d


def build_morphology(seed: int = SEED):
    """Return (soma_pts, dends, axons); dends: list of (parent_index|-1, pts)."""
    rng = random.Random(seed)
    r_soma = 8.5
    soma_pts = [[-r_soma, 0.0, 0.0, 17.0], [0.0, 0.0, 0.0, 17.0], [r_soma, 0.0, 0.0, 17.0]]
    dends = []
    for i in range(N_PRIMARY):
        # spread primaries roughly uniformly on a sphere (Fibonacci lattice) + jitter
        z = 1 - 2 * (i + 0.5) / N_PRIMARY
        phi = i * math.pi * (3 - math.sqrt(5)) + rng.uniform(-0.3, 0.3)
        rr = math.sqrt(1 - z * z)
        d = _unit([rr * math.cos(phi), rr * math.sin(phi), z * 0.6])
        start = [r_soma * 0.6 * c for c in d]
        L = rng.uniform(25, 40)
        pts, dend_dir = _section_points(rng, start, d, L, 1.5, 1.2)
        idx0 = len(dends)
        dends.append((-1, pts))
        # secondary
        for _ in range(2):
            d2 = _perturb(rng, dend_dir, 35.0)
            L2 = rng.uniform(55, 85)
            p2, dd2 = _section_points(rng, pts[-1][:3], d2, L2, 1.0, 0.75)
            idx1 = len(dends)
            dends.append((idx0, p2))
            # tertiary (terminal)
            for _ in range(2):
                d3 = _perturb(rng, dd2, 35.0)
                L3 = rng.uniform(100, 160)
                p3, _ = _section_points(rng, p2[-1][:3], d3, L3, 0.6, 0.4, npts=6)
                dends.append((idx1, p3))
    # axon: AIS (25 um, 1 um) + stub (80 um, 0.8 um), leaving soma downward
    ais = [[0.0, -r_soma * 0.5, 0.0, 1.2], [0.0, -r_soma * 0.5 - 12.5, 0.0, 1.0],
           [0.0, -r_soma * 0.5 - 25.0, 0.0, 1.0]]
    y0 = ais[-1][1]
    stub = [[0.0, y0 - 20.0 * k, 0.0, 0.8] for k in range(5)]
    return soma_pts, dends, [ais, stub]


def _fmt(x):
    return f"{x:.4f}".rstrip("0").rstrip(".") if x != 0 else "0"


def _hoc_value(v):
    return repr(float(v))


def template_text(seed: int = SEED, params: dict | None = None) -> str:
    params = dict(DEFAULT_PARAMETERS if params is None else params)
    soma_pts, dends, axons = build_morphology(seed)
    nd = len(dends)
    L = []
    w = L.append
    w("// PVBasket: synthetic fast-spiking PV basket interneuron (noble_neuron ground truth)")
    w("// GENERATED by noble_neuron/detailed/pv_family/morphology.py -- do not edit by hand.")
    w(f"// seed = {seed}; {nd} dendritic sections, 2 axonal sections.")
    w("// Usage: load_file(\"pv_basket.hoc\")  objref c  c = new PVBasket()")
    w("// Defaults assume celsius = 34 and v_init = -70 mV (set by the caller).")
    w("")
    w("begintemplate PVBasket")
    w("public soma, dend, axon, all, somatic, basal, apical, axonal")
    w("public geom_nseg, biophys, lambda_f, nSecSoma, nSecDend, nSecAxon")
    w("objref all, somatic, basal, apical, axonal")
    w(f"create soma[1], dend[{nd}], axon[2]")
    w("")
    w("proc init() {")
    w("    topol()")
    w("    shape3d()")
    w("    subsets()")
    w("    biophys()")
    w("}")
    w("")
    w("func nSecSoma() { return 1 }")
    w(f"func nSecDend() {{ return {nd} }}")
    w("func nSecAxon() { return 2 }")
    w("")
    w("proc topol() { local i")
    for i, (parent, _) in enumerate(dends):
        if parent < 0:
            w(f"    connect dend[{i}](0), soma[0](0.5)")
        else:
            w(f"    connect dend[{i}](0), dend[{parent}](1)")
    w("    connect axon[0](0), soma[0](0.5)")
    w("    connect axon[1](0), axon[0](1)")
    w("}")
    w("")
    w("proc shape3d() {")
    w("    soma[0] {pt3dclear()")
    for p in soma_pts:
        w(f"        pt3dadd({_fmt(p[0])}, {_fmt(p[1])}, {_fmt(p[2])}, {_fmt(p[3])})")
    w("    }")
    for i, (_, pts) in enumerate(dends):
        w(f"    dend[{i}] {{pt3dclear()")
        for p in pts:
            w(f"        pt3dadd({_fmt(p[0])}, {_fmt(p[1])}, {_fmt(p[2])}, {_fmt(p[3])})")
        w("    }")
    for i, pts in enumerate(axons):
        w(f"    axon[{i}] {{pt3dclear()")
        for p in pts:
            w(f"        pt3dadd({_fmt(p[0])}, {_fmt(p[1])}, {_fmt(p[2])}, {_fmt(p[3])})")
        w("    }")
    w("}")
    w("")
    w("proc subsets() { local i")
    w("    all = new SectionList()")
    w("    somatic = new SectionList()")
    w("    basal = new SectionList()")
    w("    apical = new SectionList()")
    w("    axonal = new SectionList()")
    w("    soma[0] { somatic.append()  all.append() }")
    w(f"    for i = 0, {nd - 1} dend[i] {{ basal.append()  all.append() }}")
    w("    for i = 0, 1 axon[i] { axonal.append()  all.append() }")
    w("}")
    w("")
    w("// AC length constant (um) at frequency $1 (Hz), averaged over the 3-d points")
    w("func lambda_f() { local i, x1, x2, d1, d2, lam")
    w("    if (n3d() < 2) {")
    w("        return 1e5*sqrt(diam/(4*PI*$1*Ra*cm))")
    w("    }")
    w("    x1 = arc3d(0)")
    w("    d1 = diam3d(0)")
    w("    lam = 0")
    w("    for i = 1, n3d() - 1 {")
    w("        x2 = arc3d(i)")
    w("        d2 = diam3d(i)")
    w("        lam += (x2 - x1)/sqrt(d1 + d2)")
    w("        x1 = x2")
    w("        d1 = d2")
    w("    }")
    w("    // length of a cylinder with the same electrotonic length")
    w("    lam *= sqrt(2)*1e-5*sqrt(4*PI*$1*Ra*cm)")
    w("    return L/lam")
    w("}")
    w("")
    w("// d_lambda rule (d_lambda = 0.1 at 100 Hz); call after changing Ra or cm")
    w("proc geom_nseg() { local freq, d_lambda")
    w("    freq = 100")
    w("    d_lambda = 0.1")
    w("    forsec all { nseg = int((L/(d_lambda*lambda_f(freq)) + 0.9)/2)*2 + 1 }")
    w("}")
    w("")
    w("proc biophys() {")
    # passive properties first, then nseg, then mechanisms
    for region in ("somatic", "axonal", "basal"):
        w(f"    forsec {region} {{")
        w(f"        Ra = {_hoc_value(params[region + '.Ra'])}")
        w(f"        cm = {_hoc_value(params[region + '.cm'])}")
        w("    }")
    w("    geom_nseg()")
    for region in ("somatic", "axonal", "basal"):
        w(f"    forsec {region} {{")
        for m in REGION_MECHS[region]:
            w(f"        insert {m}")
        for key, val in params.items():
            reg, name = key.split(".", 1)
            if reg != region or name in ("Ra", "cm"):
                continue
            w(f"        {name} = {_hoc_value(val)}")
        w("    }")
    w("}")
    w("")
    w("endtemplate PVBasket")
    return "\n".join(L) + "\n"


def write_template(path: str | Path | None = None, seed: int = SEED,
                   params: dict | None = None) -> Path:
    """Write the PVBasket HoC template; returns the path written."""
    if path is None:
        path = Path(__file__).with_name("templates") / "pv_basket.hoc"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template_text(seed, params))
    return path


def write_default_parameters(path: str | Path | None = None) -> Path:
    if path is None:
        path = Path(__file__).with_name("default_parameters.json")
    path = Path(path)
    path.write_text(json.dumps(DEFAULT_PARAMETERS, indent=2) + "\n")
    return path


if __name__ == "__main__":  # pragma: no cover
    print(write_template())
    print(write_default_parameters())
