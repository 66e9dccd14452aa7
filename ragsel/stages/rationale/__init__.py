"""rationale stages."""
