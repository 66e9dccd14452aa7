"""verify stages."""
