"""Text embedders. The interface is :class:`ragsel.backends.embedders.base.Embedder`."""
