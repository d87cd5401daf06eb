: nn_CaDyn -- first-order submembrane Ca2+ buffering/extrusion, noble_neuron PV model.
: Scheme: Destexhe et al. (1994) style shell model with a fraction gamma of
:   free calcium and first-order decay to minCai, as in Hay et al. (2011)
:   PLoS Comput Biol 7:e1002107 (CaDynamics_E2).
:   dcai/dt = -10000*gamma*ica/(2*F*depth) - (cai - minCai)/decay
: Units: ica (mA/cm2), cai (mM), decay (ms), depth (um), minCai (mM), gamma (1).
: Written from the published equations for noble_neuron.

NEURON {
    THREADSAFE
    SUFFIX nn_CaDyn
    USEION ca READ ica WRITE cai
    RANGE gamma, decay, depth, minCai
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    FARADAY = (faraday) (coulombs)
    (molar) = (1/liter)
    (mM) = (millimolar)
    (um) = (micron)
}

PARAMETER {
    gamma = 0.05
    decay = 80 (ms)
    depth = 0.1 (um)
    minCai = 1e-4 (mM)
}

ASSIGNED {
    ica (mA/cm2)
}

STATE { cai (mM) }

INITIAL {
    cai = minCai
}

BREAKPOINT {
    SOLVE states METHOD cnexp
}

DERIVATIVE states {
    cai' = -(10000)*(ica*gamma/(2*FARADAY*depth)) - (cai - minCai)/decay
}
