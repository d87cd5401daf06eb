"""The surrogate: config, encoding, the FNO / causal streaming networks, the spike decoder, checkpoints."""
