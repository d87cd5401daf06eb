: A hyperpolarisation-activated cation current (Ih) with one gate, for the MorphCell example.
NEURON {
    SUFFIX demo_ih
    NONSPECIFIC_CURRENT ih
    RANGE gbar, ehcn
}
UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}
PARAMETER {
    gbar = 1e-5 (S/cm2)
    ehcn = -45 (mV)
}
ASSIGNED {
    v (mV)
    ih (mA/cm2)
    minf
    tau (ms)
}
STATE { m }
BREAKPOINT {
    SOLVE states METHOD cnexp
    ih = gbar * m * (v - ehcn)
}
INITIAL {
    rates(v)
    m = minf
}
DERIVATIVE states {
    rates(v)
    m' = (minf - m) / tau
}
UNITSOFF
PROCEDURE rates(v (mV)) {
    minf = 1 / (1 + exp((v + 80) / 8))
    tau = 50
}
UNITSON
