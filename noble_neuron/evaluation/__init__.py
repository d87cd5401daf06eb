"""Accuracy of a checkpoint against NEURON, offline rollouts, plots."""
