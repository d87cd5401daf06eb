"""Electrophysiology from traces: spikes, FI curves, I_thr, s_thr, eFEL features, timing metrics."""
