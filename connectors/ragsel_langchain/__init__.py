"""ragsel inside LangChain (and LangChain objects inside ragsel)."""
