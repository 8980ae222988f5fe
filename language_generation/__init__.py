"""Language generation with TOAST on Hugging Face LLaMA-family causal LMs (see the language issues)."""
