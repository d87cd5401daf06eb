"""Reduced models fitted to a detailed model: the baselines a learned surrogate must beat."""
