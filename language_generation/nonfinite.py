"""Non-finite training stops at the step it happens, before a checkpoint with such weights is written: the
loss of a micro-batch, a gradient before the optimizer applies it, a trainable weight after a step."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import TrainerCallback

from runkit.cli import UserError

from .run_files import checkpoint_dirs


class NonFiniteTrainingError(UserError, FloatingPointError):
    """The loss, a gradient or a trainable weight went NaN or infinite; the run stops at that step (its message
    names the settings to change, so the command line answers it in one line)."""


def _stop_message(out: str, step: int, what: str) -> str:
    saved = checkpoint_dirs(Path(out))
    kept = f"the newest checkpoint, {saved[0]}, was written before it" if saved else "no checkpoint was written"
    return (
        f"{what} at step {step}: training stopped before it reaches a checkpoint ({kept}). Lower "
        "TRAIN.LEARNING_RATE (or check the data), then re-run with another OUTPUT_DIR or --overwrite"
    )


class FiniteLossMixin:
    """For a ``Trainer`` subclass: stops at the micro-batch whose loss is NaN or infinite (the ``Trainer`` would
    log the window's mean instead and go on)."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not bool(torch.isfinite(loss).all()):
            step = self.state.global_step + 1
            raise NonFiniteTrainingError(_stop_message(self.args.output_dir, step, f"non-finite loss {loss.item()}"))
        return loss


def _first_non_finite(named: list[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first tensor holding a NaN or infinity (one device sync for all of them)."""
    named = [(n, t.to_local() if hasattr(t, "to_local") else t) for n, t in named if t is not None]  # FSDP2 shards
    named = [(n, t) for n, t in named if t.numel()]  # ZeRO-3 and FSDP leave empty tensors on some processes
    if not named:
        return None
    # min and max of each tensor: finite exactly when every entry is (NaN propagates), without a copy of it
    extremes = torch.stack([torch.stack(torch.aminmax(t.detach())).float() for _, t in named])
    finite = torch.isfinite(extremes).all(dim=1)
    if bool(finite.all()):
        return None
    return next(n for (n, _), ok in zip(named, finite.tolist()) if not ok)


class NonFiniteGuard(TrainerCallback):
    """Stops before the optimizer applies a non-finite gradient, and after a step that made a trainable weight
    non-finite, so that no checkpoint with such weights is written. Under fp16 mixed precision the gradient
    scaler skips such steps itself, so gradients are left to it there. (Under ZeRO-3 and FSDP each process
    checks the tensors it holds.)"""

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if model is None or args.fp16:
            return
        grads = [(n, p.grad) for n, p in model.named_parameters() if p.requires_grad]
        bad = _first_non_finite(grads)
        if bad:
            raise NonFiniteTrainingError(
                _stop_message(args.output_dir, state.global_step + 1, f"non-finite gradient of {bad}")
            )

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        bad = _first_non_finite([(n, p) for n, p in model.named_parameters() if p.requires_grad])
        if bad:
            raise NonFiniteTrainingError(_stop_message(args.output_dir, state.global_step, f"non-finite weight {bad}"))
