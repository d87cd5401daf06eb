: nn_CaHVA -- high-voltage-activated Ca2+ current (m^2 h), noble_neuron PV model.
: Kinetics: Reuveni et al. (1993) J Neurosci 13:4609, as used in
:   Hay et al. (2011) PLoS Comput Biol 7:e1002107 (Ca_HVA).
: Units: v (mV), gbar (S/cm2), ica (mA/cm2), rates (1/ms), tau (ms).
: Temperature: qt = q10^((celsius - 34)/10), q10 = 2.3 (reference 34 degC,
:   i.e. the published rates are used unchanged at 34 degC).
: eca is computed by NEURON (Nernst) from cai written by nn_CaDyn.
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_CaHVA
    USEION ca READ eca WRITE ica
    RANGE gbar, g, ica
    RANGE mInf, mTau, hInf, hTau
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
    eca (mV)
    celsius (degC)
    ica (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
    hInf
    hTau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar*m*m*h
    ica = g*(v - eca)
}

DERIVATIVE states {
    rates(v)
    m' = (mInf - m)/mTau
    h' = (hInf - h)/hTau
}

INITIAL {
    rates(v)
    m = mInf
    h = hInf
}

: x/(exp(x/k) - 1) with the removable singularity handled
FUNCTION vtrap(x (mV), k (mV)) (mV) {
    if (fabs(x/k) < 1e-6) {
        vtrap = k*(1 - x/(2*k))
    } else {
        vtrap = x/(exp(x/k) - 1)
    }
}

PROCEDURE rates(v (mV)) {
    LOCAL qt, a, b
    UNITSOFF
    qt = q10^((celsius - 34)/10)
    a = 0.055*vtrap(-27 - v, 3.8)
    b = 0.94*exp((-75 - v)/17)
    mInf = a/(a + b)
    mTau = (1/(a + b))/qt
    a = 0.000457*exp((-13 - v)/50)
    b = 0.0065/(exp((-v - 15)/28) + 1)
    hInf = a/(a + b)
    hTau = (1/(a + b))/qt
    UNITSON
}
