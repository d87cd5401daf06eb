: nn_NaT -- fast transient Na+ current (m^3 h), noble_neuron ground-truth PV model.
: Kinetics: Colbert & Pan (2002) Nat Neurosci 5:533, as parameterised in
:   Hay et al. (2011) PLoS Comput Biol 7:e1002107 (NaTa), recorded at 21 degC.
: Units: v (mV), gbar (S/cm2), ina (mA/cm2), rates (1/ms), tau (ms).
: Temperature: qt = q10^((celsius - 21)/10), q10 = 2.3.
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_NaT
    USEION na READ ena WRITE ina
    RANGE gbar, g, ina, vshiftm, vshifth
    RANGE mInf, mTau, hInf, hTau
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.00001 (S/cm2)
    vshiftm = 0 (mV)  : activation shift (negative = hyperpolarised)
    vshifth = 0 (mV)  : inactivation shift
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

: x/(1 - exp(-x/k)) with the removable singularity handled
FUNCTION efun(x (mV), k (mV)) (mV) {
    if (fabs(x/k) < 1e-6) {
        efun = k*(1 + x/(2*k))
    } else {
        efun = x/(1 - exp(-x/k))
    }
}

PROCEDURE rates(v (mV)) {
    LOCAL qt, a, b, vv
    UNITSOFF
    qt = q10^((celsius - 21)/10)
    vv = v - vshiftm
    a = 0.182*efun(vv + 38, 6)
    b = 0.124*efun(-(vv + 38), 6)
    mInf = a/(a + b)
    mTau = (1/(a + b))/qt
    vv = v - vshifth
    a = 0.015*efun(-(vv + 66), 6)
    b = 0.015*efun(vv + 66, 6)
    hInf = a/(a + b)
    hTau = (1/(a + b))/qt
    UNITSON
}
