: nn_DendriteLoad -- the current a removed dendritic tree draws from the soma, as a linear filter of the soma
: voltage (noble_neuron.neuron.hybrid_cell: network cells with the soma and axon of the detailed model).
:   i = i0 + g0 x - sum_k d_k s_k,   x = v - vrest,   tau_k ds_k/dt = x - s_k
: i.e. the tree's input admittance Y(jw) = g0 - sum_k d_k / (1 + jw tau_k) (its capacitance C goes into the
: soma's cm): a passive RC load (Foster form, d_k >= 0, g0 >= sum d_k), stable with any soma. Fitted by
: noble_neuron.simulation.dendrite_load on the axial current the detailed cell's soma feeds its dendrites.
: During and after each spike the real tree draws what no linear filter gives (its own Na and K channels answer the
: back-propagating AP): a spike-triggered current sum_j a_j exp(-(t - t_spike)/taue_j) (as GIF's eta), triggered
: when v crosses vspike upwards, fitted on what the linear part leaves unexplained.
: i0 (nA) is the tree's steady current at rest. Fixed step: each mode is coupled to v implicitly (backward
: Euler: f_k = 1 - exp(-dt/tau_k), set at finitialize from the global implicit_dt); under CVode implicit_dt = 0.
: 12 modes named one by one (NMODL cannot integrate STATE arrays with cnexp); unused modes keep d = 0.
: No VERBATIM: runs under CoreNEURON with NEURON's own spike times (tests/neuron/test_coreneuron.py).
: Name avoids "syn"/"ampa"/"gaba"/"nmda"/"glu" so NetPyNE does not treat it as a synapse.

NEURON {
    POINT_PROCESS nn_DendriteLoad
    NONSPECIFIC_CURRENT i
    RANGE i0, g0, vrest, i, celsius_fit
    RANGE d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12
    RANGE tau1, tau2, tau3, tau4, tau5, tau6, tau7, tau8, tau9, tau10, tau11, tau12
    RANGE vspike, a1, a2, a3, a4, a5, a6, a7, a8
    RANGE taue1, taue2, taue3, taue4, taue5, taue6, taue7, taue8
    GLOBAL implicit_dt
}

UNITS {
    (mV) = (millivolt)
    (nA) = (nanoamp)
    (uS) = (microsiemens)
}

PARAMETER {
    i0 = 0 (nA)
    g0 = 0 (uS)
    vrest = -70 (mV)
    implicit_dt = 0 (ms)
    : the temperature the load was fitted at (degC; -1: unknown): checked against celsius at finitialize
    celsius_fit = -1 (degC)
    vspike = -20 (mV)
    a1 = 0 (nA)
    taue1 = 1 (ms) <1e-9, 1e9>
    a2 = 0 (nA)
    taue2 = 1 (ms) <1e-9, 1e9>
    a3 = 0 (nA)
    taue3 = 1 (ms) <1e-9, 1e9>
    a4 = 0 (nA)
    taue4 = 1 (ms) <1e-9, 1e9>
    a5 = 0 (nA)
    taue5 = 1 (ms) <1e-9, 1e9>
    a6 = 0 (nA)
    taue6 = 1 (ms) <1e-9, 1e9>
    a7 = 0 (nA)
    taue7 = 1 (ms) <1e-9, 1e9>
    a8 = 0 (nA)
    taue8 = 1 (ms) <1e-9, 1e9>
    d1 = 0 (uS)
    tau1 = 1 (ms) <1e-9, 1e9>
    d2 = 0 (uS)
    tau2 = 1 (ms) <1e-9, 1e9>
    d3 = 0 (uS)
    tau3 = 1 (ms) <1e-9, 1e9>
    d4 = 0 (uS)
    tau4 = 1 (ms) <1e-9, 1e9>
    d5 = 0 (uS)
    tau5 = 1 (ms) <1e-9, 1e9>
    d6 = 0 (uS)
    tau6 = 1 (ms) <1e-9, 1e9>
    d7 = 0 (uS)
    tau7 = 1 (ms) <1e-9, 1e9>
    d8 = 0 (uS)
    tau8 = 1 (ms) <1e-9, 1e9>
    d9 = 0 (uS)
    tau9 = 1 (ms) <1e-9, 1e9>
    d10 = 0 (uS)
    tau10 = 1 (ms) <1e-9, 1e9>
    d11 = 0 (uS)
    tau11 = 1 (ms) <1e-9, 1e9>
    d12 = 0 (uS)
    tau12 = 1 (ms) <1e-9, 1e9>
}

ASSIGNED {
    v (mV)
    i (nA)
    x (mV)
    f1
    f2
    f3
    f4
    f5
    f6
    f7
    f8
    f9
    f10
    f11
    f12
}

STATE {
    sa (mV)
    sb (mV)
    sc (mV)
    sd (mV)
    se (mV)
    sf (mV)
    sg (mV)
    sh (mV)
    si (mV)
    sj (mV)
    sk (mV)
    sl (mV)
    ea (nA)
    eb (nA)
    ec (nA)
    ed (nA)
    ee (nA)
    ef (nA)
    eg (nA)
    eh (nA)
}

INITIAL {
    sa = v - vrest
    f1 = 1 - exp(-implicit_dt / tau1)
    sb = v - vrest
    f2 = 1 - exp(-implicit_dt / tau2)
    sc = v - vrest
    f3 = 1 - exp(-implicit_dt / tau3)
    sd = v - vrest
    f4 = 1 - exp(-implicit_dt / tau4)
    se = v - vrest
    f5 = 1 - exp(-implicit_dt / tau5)
    sf = v - vrest
    f6 = 1 - exp(-implicit_dt / tau6)
    sg = v - vrest
    f7 = 1 - exp(-implicit_dt / tau7)
    sh = v - vrest
    f8 = 1 - exp(-implicit_dt / tau8)
    si = v - vrest
    f9 = 1 - exp(-implicit_dt / tau9)
    sj = v - vrest
    f10 = 1 - exp(-implicit_dt / tau10)
    sk = v - vrest
    f11 = 1 - exp(-implicit_dt / tau11)
    sl = v - vrest
    f12 = 1 - exp(-implicit_dt / tau12)
    ea = 0
    eb = 0
    ec = 0
    ed = 0
    ee = 0
    ef = 0
    eg = 0
    eh = 0
    net_send(0, 1)
}

BREAKPOINT {
    SOLVE modes METHOD cnexp
    x = v - vrest
    i = i0 + g0 * x
    i = i - d1 * (sa + f1 * (x - sa))
    i = i - d2 * (sb + f2 * (x - sb))
    i = i - d3 * (sc + f3 * (x - sc))
    i = i - d4 * (sd + f4 * (x - sd))
    i = i - d5 * (se + f5 * (x - se))
    i = i - d6 * (sf + f6 * (x - sf))
    i = i - d7 * (sg + f7 * (x - sg))
    i = i - d8 * (sh + f8 * (x - sh))
    i = i - d9 * (si + f9 * (x - si))
    i = i - d10 * (sj + f10 * (x - sj))
    i = i - d11 * (sk + f11 * (x - sk))
    i = i - d12 * (sl + f12 * (x - sl))
    i = i + ea + eb + ec + ed + ee + ef + eg + eh
}

DERIVATIVE modes {
    sa' = ((v - vrest) - sa) / tau1
    sb' = ((v - vrest) - sb) / tau2
    sc' = ((v - vrest) - sc) / tau3
    sd' = ((v - vrest) - sd) / tau4
    se' = ((v - vrest) - se) / tau5
    sf' = ((v - vrest) - sf) / tau6
    sg' = ((v - vrest) - sg) / tau7
    sh' = ((v - vrest) - sh) / tau8
    si' = ((v - vrest) - si) / tau9
    sj' = ((v - vrest) - sj) / tau10
    sk' = ((v - vrest) - sk) / tau11
    sl' = ((v - vrest) - sl) / tau12
    ea' = -ea / taue1
    eb' = -eb / taue2
    ec' = -ec / taue3
    ed' = -ed / taue4
    ee' = -ee / taue5
    ef' = -ef / taue6
    eg' = -eg / taue7
    eh' = -eh / taue8
}

NET_RECEIVE(w) {
    if (flag == 1) {
        WATCH (v > vspike) 2
    } else if (flag == 2) {
        ea = ea + a1
        eb = eb + a2
        ec = ec + a3
        ed = ed + a4
        ee = ee + a5
        ef = ef + a6
        eg = eg + a7
        eh = eh + a8
    }
}
