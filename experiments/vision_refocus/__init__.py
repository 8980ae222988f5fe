"""The vision refocusing study: does a top-down path pre-tuned on a source task transfer better than the usual
methods? ``python -m experiments.vision_refocus`` (``bash scripts/refocus_experiment.sh``); its val-only study,
``python -m experiments.vision_refocus.study``."""
