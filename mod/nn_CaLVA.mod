: nn_CaLVA -- low-voltage-activated (T-type) Ca2+ current (m^2 h), noble_neuron PV model.
: Kinetics: Avery & Johnston (1996) J Neurosci 16:5567, with the +10 mV shift
:   of Hay et al. (2011) PLoS Comput Biol 7:e1002107 (Ca_LVAst). 21 degC data.
: Units: v (mV), gbar (S/cm2), ica (mA/cm2), tau (ms).
: Temperature: qt = q10^((celsius - 21)/10), q10 = 2.3.
: eca is computed by NEURON (Nernst) from cai written by nn_CaDyn.
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_CaLVA
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

PROCEDURE rates(v (mV)) {
    LOCAL qt, vv
    UNITSOFF
    qt = q10^((celsius - 21)/10)
    vv = v + 10
    mInf = 1/(1 + exp(-(vv + 30)/6))
    mTau = (5 + 20/(1 + exp((vv + 25)/5)))/qt
    hInf = 1/(1 + exp((vv + 80)/6.4))
    hTau = (20 + 50/(1 + exp((vv + 40)/7)))/qt
    UNITSON
}
