"""Uncertainty scores (being written)."""
