"""Visual classification with TOAST and its baselines on timm vision transformers."""
