"""Backends stages call: embedders, LLM clients, stores. Heavy imports live inside them."""
