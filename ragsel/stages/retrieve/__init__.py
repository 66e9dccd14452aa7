"""retrieve stages."""
