"""Prices and cost computation."""
