"""The HDF5 dataset format: traces, stimuli, per-model metadata (the feature table is noble_neuron.features.table)."""
