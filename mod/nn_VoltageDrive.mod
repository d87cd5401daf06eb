: nn_VoltageDrive -- imposes a target voltage on a compartment (noble_neuron SurrogateCell).
: A stiff series-resistance clamp, i = (vc - v)/rs, with ELECTRODE_CURRENT sign convention
: (positive i depolarises). vc (mV) is driven by a continuous Vector.play of the surrogate's
: predicted trace (linear interpolation between samples); rs (megohm) = 1e-3 keeps the
: error from other currents into the node below 1 uV per nA.
: No VERBATIM: the mechanism stays compatible with CoreNEURON/GPU builds.
: feat0/feat1 carry the neuron's features and ckpt its checkpoint (an index into the process's
: registry) for cells built from a NetPyNE rule (noble_neuron.integrations.netpyne).
: Name avoids "syn"/"ampa"/"gaba"/"nmda"/"glu" so NetPyNE does not treat it as a synapse.

NEURON {
    POINT_PROCESS nn_VoltageDrive
    ELECTRODE_CURRENT i
    RANGE vc, rs, i, feat0, feat1, ckpt
}

UNITS {
    (mV) = (millivolt)
    (nA) = (nanoamp)
    (MOhm) = (megohm)
}

PARAMETER {
    rs = 0.001 (MOhm) <1e-9, 1e9>
    : the neuron's surrogate features (I_thr nA, s_thr Hz/nA) when a NetPyNE cell rule creates the drive;
    : -1e9 = not set (the checkpoint's default neuron)
    feat0 = -1e9
    feat1 = -1e9
    : which network checkpoint (engine.rule_checkpoints index) a NetPyNE rule asked for; -1 = the shipped one
    ckpt = -1
}

ASSIGNED {
    v (mV)
    vc (mV)
    i (nA)
}

INITIAL {
    i = 0
}

BREAKPOINT {
    i = (vc - v) / rs
}
