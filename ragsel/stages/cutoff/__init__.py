"""cutoff stages."""
