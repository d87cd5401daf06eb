"""NEURON integration: SurrogateCell and the engines that drive it (whole-trace, network mode)."""
