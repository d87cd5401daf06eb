"""Integrations with other simulators' front ends (NetPyNE)."""
