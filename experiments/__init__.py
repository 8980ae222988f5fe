"""Research experiments built on the library (not installed with it): run from a checkout's root,
``python -m experiments.refocus`` (``bash scripts/refocus_experiment.sh``) and ``python -m experiments.refocus_study``.
Their findings are reported in ``visual_classification/README.md``."""
