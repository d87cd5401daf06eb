"""Detailed models: the model spec, mechanisms, building a cell in NEURON, BluePyOpt export, the shipped PV family (simulating and calibrating them: noble_neuron.simulation)."""
