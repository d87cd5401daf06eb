: nn_SK -- small-conductance Ca2+-activated K+ current (SK), noble_neuron PV model.
: Kinetics: Koehler et al. (1996) Science 273:1709 (Hill fit: EC50 0.43 uM,
:   Hill coefficient 4.8), first-order gating with tau = 1 ms as in
:   Hay et al. (2011) PLoS Comput Biol 7:e1002107 (SK_E2).
: Units: v (mV), cai (mM), gbar (S/cm2), ik (mA/cm2), tau (ms).
: Temperature: qt = q10^((celsius - 34)/10), q10 = 2.3 (reference 34 degC).
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_SK
    USEION k READ ek WRITE ik
    USEION ca READ cai
    RANGE gbar, g, ik
    RANGE zInf, zTau
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
    (mM) = (milli/liter)
}

PARAMETER {
    gbar = 0.000001 (S/cm2)
    zTau0 = 1 (ms)
    q10 = 2.3
}

ASSIGNED {
    v (mV)
    ek (mV)
    cai (mM)
    celsius (degC)
    ik (mA/cm2)
    g (S/cm2)
    zInf
    zTau (ms)
}

STATE { z }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar*z
    ik = g*(v - ek)
}

DERIVATIVE states {
    rates(cai)
    z' = (zInf - z)/zTau
}

INITIAL {
    rates(cai)
    z = zInf
}

PROCEDURE rates(ca (mM)) {
    LOCAL qt, c
    UNITSOFF
    qt = q10^((celsius - 34)/10)
    c = ca
    if (c < 1e-7) { c = 1e-7 }
    zInf = 1/(1 + (0.00043/c)^4.8)
    zTau = zTau0/qt
    UNITSON
}
