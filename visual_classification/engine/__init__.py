"""Training engine: optimiser and schedule, metrics, run files, the trainer, torchrun support."""

from .trainer import Trainer, seed_everything

__all__ = ["Trainer", "seed_everything"]
