"""Training-data generation: models × protocols into HDF5, resumable, pool / MPI engines, one writer per output."""
