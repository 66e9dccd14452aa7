"""LLM backends. The interface is :class:`ragsel.backends.llm.base.LLM`."""
