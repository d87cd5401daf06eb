"""Detailed models: the model spec, mechanisms, building and simulating a cell in NEURON, calibration, BluePyOpt, the shipped PV family."""
