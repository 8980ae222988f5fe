"""Run plumbing both halves share, standard library only (PyYAML where a config file is read): atomic files
(:mod:`runkit.files`), content fingerprints (:mod:`runkit.fingerprint`), config files with ``_BASE_``
(:mod:`runkit.config_files`), run records and logging (:mod:`runkit.runs`), the run folder's lock
(:mod:`runkit.lock`), the command lines' error rule (:mod:`runkit.cli`) and the lr-grid rule (:mod:`runkit.lr_grid`).
It imports no torch, so a CLI answers ``--help`` and config errors at once.
"""
