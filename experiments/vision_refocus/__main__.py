"""``python -m experiments.vision_refocus``: the vision refocusing study (see ``experiment.py``)."""

from .experiment import main

if __name__ == "__main__":
    main()
