"""Render backends: one module each, behind one small Protocol and a registry of lazy import strings."""
