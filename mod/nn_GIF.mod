: nn_GIF -- generalized integrate-and-fire neuron (Pozzorini et al. 2015) on a one-compartment soma: the
: reduced-model baseline fitted by noble_neuron.baselines.gif. Every current of the cell but the synaptic ones
: lives here, so the section carries no other mechanism (cm sets C through its area).
:   i = gl (v - el) + sum_k e_k                      (outward positive, nA; e_k: the spike-triggered current)
:   V_T = vt_star + sum_k q_k                        (mV; q_k: the moving threshold)
:   de_k/dt = -e_k / tau_k,  dq_k/dt = -q_k / tau_k, and at each spike e_k += eta_k, q_k += gamma_k
: A spike where v reaches V_T (deterministic): an event (NetCon source), v drawn at v_top for an instant (a
: visible spike the -20 mV detector finds), then v held at v_reset for t_ref by a stiff conductance g_ref.
: 5 kernel modes named one by one (NMODL cannot integrate STATE arrays with cnexp); unused modes keep 0.
: No VERBATIM: runs under CoreNEURON with NEURON's spike times (tests/neuron/test_coreneuron.py), where a NetCon
: on soma v misses the drawn spike: take spikes from the mechanism (GIFCell.spike_source). Assigning v in
: NET_RECEIVE is the standard
: integrate-and-fire reset in NEURON. Name avoids "syn"/"ampa"/"gaba"/"nmda"/"glu" (NetPyNE synapse names).

NEURON {
    POINT_PROCESS nn_GIF
    NONSPECIFIC_CURRENT i
    RANGE gl, el, vt_star, v_reset, v_top, t_ref, g_ref, i, refractory
    RANGE eta1, eta2, eta3, eta4, eta5, gamma1, gamma2, gamma3, gamma4, gamma5
    RANGE tau1, tau2, tau3, tau4, tau5
}

UNITS {
    (mV) = (millivolt)
    (nA) = (nanoamp)
    (uS) = (microsiemens)
}

PARAMETER {
    gl = 0.01 (uS)
    el = -70 (mV)
    vt_star = -50 (mV)
    v_reset = -70 (mV)
    v_top = 20 (mV)
    t_ref = 2 (ms)
    g_ref = 1 (uS)
    eta1 = 0 (nA)
    eta2 = 0 (nA)
    eta3 = 0 (nA)
    eta4 = 0 (nA)
    eta5 = 0 (nA)
    gamma1 = 0 (mV)
    gamma2 = 0 (mV)
    gamma3 = 0 (mV)
    gamma4 = 0 (mV)
    gamma5 = 0 (mV)
    tau1 = 3 (ms) <1e-9, 1e9>
    tau2 = 10 (ms) <1e-9, 1e9>
    tau3 = 30 (ms) <1e-9, 1e9>
    tau4 = 100 (ms) <1e-9, 1e9>
    tau5 = 300 (ms) <1e-9, 1e9>
}

ASSIGNED {
    v (mV)
    i (nA)
    refractory
}

STATE {
    e1 (nA)
    e2 (nA)
    e3 (nA)
    e4 (nA)
    e5 (nA)
    q1 (mV)
    q2 (mV)
    q3 (mV)
    q4 (mV)
    q5 (mV)
}

INITIAL {
    e1 = 0
    e2 = 0
    e3 = 0
    e4 = 0
    e5 = 0
    q1 = 0
    q2 = 0
    q3 = 0
    q4 = 0
    q5 = 0
    refractory = 0
    net_send(0, 1)
}

BREAKPOINT {
    SOLVE kernels METHOD cnexp
    if (refractory > 0) {
        i = g_ref * (v - v_reset) + e1 + e2 + e3 + e4 + e5
    } else {
        i = gl * (v - el) + e1 + e2 + e3 + e4 + e5
    }
}

DERIVATIVE kernels {
    e1' = -e1 / tau1
    e2' = -e2 / tau2
    e3' = -e3 / tau3
    e4' = -e4 / tau4
    e5' = -e5 / tau5
    q1' = -q1 / tau1
    q2' = -q2 / tau2
    q3' = -q3 / tau3
    q4' = -q4 / tau4
    q5' = -q5 / tau5
}

NET_RECEIVE (weight) {
    if (flag == 1) {
        WATCH (v > vt_star + q1 + q2 + q3 + q4 + q5) 2
    } else if (flag == 2 && refractory == 0) {
        net_event(t)
        v = v_top
        e1 = e1 + eta1
        e2 = e2 + eta2
        e3 = e3 + eta3
        e4 = e4 + eta4
        e5 = e5 + eta5
        q1 = q1 + gamma1
        q2 = q2 + gamma2
        q3 = q3 + gamma3
        q4 = q4 + gamma4
        q5 = q5 + gamma5
        refractory = 1
        net_send(t_ref, 3)
    } else if (flag == 3) {
        refractory = 0
    }
}
