: nn_KT -- fast inactivating (transient, A-type) K+ current (m^4 h),
:   noble_neuron ground-truth PV model.
: Kinetics: Korngreen & Sakmann (2000) J Physiol 525:621, with the +10 mV
:   shift used by Hay et al. (2011) PLoS Comput Biol 7:e1002107 (K_Tst). 21 degC data.
: Units: v (mV), gbar (S/cm2), ik (mA/cm2), tau (ms).
: Temperature: qt = q10^((celsius - 21)/10), q10 = 2.3.
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_KT
    USEION k READ ek WRITE ik
    RANGE gbar, g, ik
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
    ek (mV)
    celsius (degC)
    ik (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
    hInf
    hTau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar*m*m*m*m*h
    ik = g*(v - ek)
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
    mInf = 1/(1 + exp(-(vv + 0)/19))
    mTau = (0.34 + 0.92*exp(-((vv + 71)/59)^2))/qt
    hInf = 1/(1 + exp((vv + 66)/10))
    hTau = (8 + 49*exp(-((vv + 73)/23)^2))/qt
    UNITSON
}
