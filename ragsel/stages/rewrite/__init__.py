"""rewrite stages."""
