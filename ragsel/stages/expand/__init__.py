"""expand stages."""
