"""Stages, one module per stage, grouped by role. See ragsel.registry for the names."""
