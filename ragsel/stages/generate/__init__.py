"""generate stages."""
