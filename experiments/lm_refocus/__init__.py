"""The language refocusing study: pre-tune the top-down path on real text, then tune on exact-answer
instruction families against the language baselines (``python -m experiments.lm_refocus``)."""
