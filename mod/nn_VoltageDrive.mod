: nn_VoltageDrive -- imposes a target voltage on a compartment (noble_neuron SurrogateCell).
: A stiff series-resistance clamp, i = (vc - v)/rs, with ELECTRODE_CURRENT sign convention
: (positive i depolarises). vc (mV) is driven by a continuous Vector.play of the surrogate's
: predicted trace (linear interpolation between samples); rs (megohm) = 1e-3 keeps the
: error from other currents into the node below 1 uV per nA.
: No VERBATIM: the mechanism stays compatible with CoreNEURON/GPU builds.
: ckpt and neuron carry, for cells built from a NetPyNE rule (noble_neuron.integrations.netpyne),
: the indices of its checkpoint and of its neuron's features in the process's registries.
: Name avoids "syn"/"ampa"/"gaba"/"nmda"/"glu" so NetPyNE does not treat it as a synapse.

NEURON {
    POINT_PROCESS nn_VoltageDrive
    ELECTRODE_CURRENT i
    RANGE vc, rs, i, ckpt, neuron
}

UNITS {
    (mV) = (millivolt)
    (nA) = (nanoamp)
    (MOhm) = (megohm)
}

PARAMETER {
    rs = 0.001 (MOhm) <1e-9, 1e9>
    : which network checkpoint (engine.rule_checkpoints index) a NetPyNE rule asked for; -1 = the shipped one
    ckpt = -1
    : which neuron's features (engine.rule_neurons index); -1 = the checkpoint's default neuron
    neuron = -1
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
