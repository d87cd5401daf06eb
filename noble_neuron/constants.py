"""Settings shared across the package (one place, as eFEL's Threshold setting)."""

__all__ = ["SPIKE_THRESHOLD_MV"]

#: a spike is an upward crossing of this somatic voltage (mV): features, decoders, labels, benchmarks, tests
SPIKE_THRESHOLD_MV = -20.0
