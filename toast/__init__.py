"""TOAST: Top-Down Attention Steering, the module shared by the vision and language sub-projects.

Reads top to bottom: the top-down module (:mod:`toast.topdown`), value steering (:mod:`toast.steering`),
the two-pass driver (:mod:`toast.two_pass`), the folded path (:mod:`toast.folded`), adapter files
(:mod:`toast.adapter`); shared by both halves' method code: which top-down tensors train (:mod:`toast.parts`),
the method-registry shape (:mod:`toast.registry`), the ``MODEL.TOAST`` keys (:mod:`toast.config_keys`), the
parameter summary (:mod:`toast.summary`). Depends on torch only (the registry and config keys not even on
that); run plumbing lives in :mod:`runkit`. Import from the submodules: ``from toast.topdown import
TopDownModule``.
"""
