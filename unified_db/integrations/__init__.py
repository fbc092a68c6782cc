"""Integrations with other libraries (each needs its extra)."""
