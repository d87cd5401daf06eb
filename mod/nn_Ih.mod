: nn_Ih -- hyperpolarisation-activated cation current (HCN), noble_neuron PV model.
: Kinetics: Kole, Hallermann & Stuart (2006) J Neurosci 26:1677 (recorded at 34 degC).
: Units: v (mV), gbar (S/cm2), ihcn (mA/cm2), ehcn (mV), tau (ms).
: Temperature: qt = q10^((celsius - 34)/10), q10 = 2.3 (reference 34 degC).
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_Ih
    NONSPECIFIC_CURRENT ihcn
    RANGE gbar, g, ihcn, ehcn
    RANGE mInf, mTau
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.00001 (S/cm2)
    ehcn = -45.0 (mV)
    q10 = 2.3
}

ASSIGNED {
    v (mV)
    celsius (degC)
    ihcn (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
}

STATE { m }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar*m
    ihcn = g*(v - ehcn)
}

DERIVATIVE states {
    rates(v)
    m' = (mInf - m)/mTau
}

INITIAL {
    rates(v)
    m = mInf
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
    a = 0.001*6.43*vtrap(v + 154.9, 11.9)
    b = 0.001*193*exp(v/33.1)
    mInf = a/(a + b)
    mTau = (1/(a + b))/qt
    UNITSON
}
