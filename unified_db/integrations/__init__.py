"""Integrations with web frameworks and agent libraries (optional extras)."""
