: nn_KP -- slow inactivating (persistent) K+ current (m^2 h),
:   noble_neuron ground-truth PV model.
: Kinetics: Korngreen & Sakmann (2000) J Physiol 525:621 (K slow), as
:   parameterised in Hay et al. (2011) PLoS Comput Biol 7:e1002107 (K_Pst). 21 degC data.
: Units: v (mV), gbar (S/cm2), ik (mA/cm2), tau (ms).
: Temperature: qt = q10^((celsius - 21)/10), q10 = 2.3.
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_KP
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
    g = gbar*m*m*h
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
    LOCAL qt, tmp
    UNITSOFF
    qt = q10^((celsius - 21)/10)
    mInf = 1/(1 + exp(-(v + 14.3)/14.6))
    if (v < -50) {
        mTau = (1.25 + 175.03*exp(0.026*v))/qt
    } else {
        mTau = (1.25 + 13*exp(-0.026*v))/qt
    }
    hInf = 1/(1 + exp((v + 54)/11))
    tmp = 360 + (1010 + 24*(v + 55))*exp(-((v + 75)/48)^2)
    if (tmp < 50) { tmp = 50 }
    hTau = tmp/qt
    UNITSON
}
