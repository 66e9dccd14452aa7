"""rerank stages."""
