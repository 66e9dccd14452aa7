"""ragsel inside LlamaIndex (and LlamaIndex objects inside ragsel)."""
