"""The HDF5 dataset format and the per-model feature table."""
