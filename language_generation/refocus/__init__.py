"""The language refocusing experiment: pre-tune the top-down path on real text, then tune on exact-answer
instruction families against the language baselines (``python -m language_generation.refocus``)."""
