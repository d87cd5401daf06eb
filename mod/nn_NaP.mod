: nn_NaP -- persistent Na+ current (m^3 h), noble_neuron ground-truth PV model.
: Kinetics: Magistretti & Alonso (1999) J Gen Physiol 114:491 (steady state and
:   slow inactivation), activation time course scaled from the transient
:   channel as in Hay et al. (2011) PLoS Comput Biol 7:e1002107 (Nap_Et2). 21 degC data.
: Units: v (mV), gbar (S/cm2), ina (mA/cm2), tau (ms).
: Temperature: qt = q10^((celsius - 21)/10), q10 = 2.3.
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_NaP
    USEION na READ ena WRITE ina
    RANGE gbar, g, ina
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
    ena (mV)
    celsius (degC)
    ina (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
    hInf
    hTau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar*m*m*m*h
    ina = g*(v - ena)
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

FUNCTION efun(x (mV), k (mV)) (mV) {
    if (fabs(x/k) < 1e-6) {
        efun = k*(1 + x/(2*k))
    } else {
        efun = x/(1 - exp(-x/k))
    }
}

PROCEDURE rates(v (mV)) {
    LOCAL qt, a, b
    UNITSOFF
    qt = q10^((celsius - 21)/10)
    mInf = 1/(1 + exp(-(v + 52.6)/4.6))
    a = 0.182*efun(v + 38, 6)
    b = 0.124*efun(-(v + 38), 6)
    mTau = 6/(a + b)/qt
    hInf = 1/(1 + exp((v + 48.8)/10))
    a = 2.88e-6*efun(-(v + 17), 4.63)
    b = 6.94e-6*efun(v + 64.4, 2.63)
    hTau = (1/(a + b))/qt
    UNITSON
}
