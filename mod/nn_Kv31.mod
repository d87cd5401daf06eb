: nn_Kv31 -- fast delayed-rectifier Kv3.1 current (n^1), noble_neuron ground-truth PV model.
: Kinetics: Rettig et al. (1992) EMBO J 11:2473, as parameterised in
:   Hay et al. (2011) PLoS Comput Biol 7:e1002107 (SKv3_1); room-temperature data.
: Units: v (mV), gbar (S/cm2), ik (mA/cm2), tau (ms).
: Temperature: qt = q10^((celsius - 21)/10), q10 = 2.3 (added here; the
:   original parameterisation had no temperature dependence).
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_Kv31
    USEION k READ ek WRITE ik
    RANGE gbar, g, ik
    RANGE mInf, mTau
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.00001 (S/cm2)
    q10 = 2.3
}

ASSIGNED {
    v (mV)
    ek (mV)
    celsius (degC)
    ik (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
}

STATE { m }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar*m
    ik = g*(v - ek)
}

DERIVATIVE states {
    rates(v)
    m' = (mInf - m)/mTau
}

INITIAL {
    rates(v)
    m = mInf
}

PROCEDURE rates(v (mV)) {
    LOCAL qt
    UNITSOFF
    qt = q10^((celsius - 21)/10)
    mInf = 1/(1 + exp((v - 18.7)/(-9.7)))
    mTau = 0.2*20/(1 + exp((v + 46.56)/(-44.14)))/qt
    UNITSON
}
