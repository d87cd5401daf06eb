: nn_AdEx -- adaptive exponential integrate-and-fire (Brette & Gerstner 2005) on a one-compartment soma.
: noble_neuron's reduced-model baseline (noble_neuron.baselines): every current of the cell but the
: synaptic ones lives here, so the section carries no other mechanism (cm sets C through its area).
:   i = gl (v - el) - gl delta_t exp((v - vt)/delta_t) + w          (outward positive, nA)
:   tau_w dw/dt = a (v - el) - w
: At v > v_peak (set to vt + 4 delta_t by AdExCell: the upswing is committed there, and backward Euler
: stays on it for dt < tau_m e^-4): an event (NetCon source), v drawn at v_top for an instant (a visible
: spike the -20 mV detector finds), w += b, then v held at v_reset for t_ref by a stiff conductance
: g_ref. The exponent is capped at EXP_CAP only to keep a huge synaptic jump finite.
: No VERBATIM: runs under CoreNEURON (tests/neuron/test_coreneuron.py), where a NetCon on soma v misses the
: drawn spike: take spikes from the mechanism (AdExCell.spike_source). Assigning v in NET_RECEIVE is the standard
: integrate-and-fire reset in NEURON (as in the Izhikevich mechanisms NetPyNE ships).
: Name avoids "syn"/"ampa"/"gaba"/"nmda"/"glu" so NetPyNE does not treat it as a synapse.

NEURON {
    POINT_PROCESS nn_AdEx
    NONSPECIFIC_CURRENT i
    RANGE gl, el, vt, delta_t, a, b, tau_w, v_reset, v_peak, v_top, t_ref, g_ref, w, i, refractory
}

UNITS {
    (mV) = (millivolt)
    (nA) = (nanoamp)
    (uS) = (microsiemens)
}

CONSTANT {
    EXP_CAP = 10
}

PARAMETER {
    gl = 0.01 (uS)
    el = -70 (mV)
    vt = -50 (mV)
    delta_t = 2 (mV) <1e-3, 1e9>
    a = 0 (uS)
    b = 0 (nA)
    tau_w = 100 (ms) <1e-3, 1e9>
    v_reset = -60 (mV)
    v_peak = -42 (mV)
    v_top = 20 (mV)
    t_ref = 0.5 (ms)
    g_ref = 1 (uS)
}

ASSIGNED {
    v (mV)
    i (nA)
    refractory
}

STATE {
    w (nA)
}

INITIAL {
    w = 0
    refractory = 0
    net_send(0, 1)
}

BREAKPOINT {
    LOCAL x
    SOLVE adaptation METHOD cnexp
    if (refractory > 0) {
        i = g_ref * (v - v_reset) + w
    } else {
        x = (v - vt) / delta_t
        if (x > EXP_CAP) {
            x = EXP_CAP
        }
        i = gl * (v - el) - gl * delta_t * exp(x) + w
    }
}

DERIVATIVE adaptation {
    w' = (a * (v - el) - w) / tau_w
}

NET_RECEIVE (weight) {
    if (flag == 1) {
        WATCH (v > v_peak) 2
    } else if (flag == 2 && refractory == 0) {
        net_event(t)
        v = v_top
        w = w + b
        refractory = 1
        net_send(t_ref, 3)
    } else if (flag == 3) {
        refractory = 0
    }
}
