"""Pydantic models at the edges: world files, events, replay results, settings."""
