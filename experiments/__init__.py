"""Research studies built on the library, one folder each (not installed with it), run from a checkout's root:
``python -m experiments.vision_refocus`` (``bash scripts/refocus_experiment.sh``) and
``python -m experiments.lm_refocus`` (``bash scripts/lm_refocus_experiment.sh``). Shared by both: the job pool
(``jobs``), the method-table shape (``methods``) and the statistics (``stats``). Their findings are reported in
``visual_classification/README.md`` and ``language_generation/README.md``."""
