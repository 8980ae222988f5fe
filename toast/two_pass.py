"""The two-pass driver: bottom-up pass, top-down feedback, steered second pass.

The driver knows nothing of the backbone: it gets a callable that runs one pass and returns the
tokens that the feedback reads (first pass) and that the task reads (second pass).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .folded import FoldChoice
from .steering import ValueSteering
from .topdown import TopDownModule


@dataclass
class TwoPassOutput:
    """Second-pass tokens, first-pass tokens, and the reconstruction loss (``None`` when its coefficient is 0)."""

    tokens: torch.Tensor
    first_pass_tokens: torch.Tensor
    recon_loss: torch.Tensor | None = None


def first_tensor(value: object) -> torch.Tensor:
    """Hugging Face layers return tuples; timm blocks return tensors."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise TypeError(f"cannot read a hidden-state tensor from a layer that returned {type(value).__name__}")


@contextlib.contextmanager
def record_layers(layers: Sequence[nn.Module]) -> Iterator[tuple[list, list]]:
    """Records every layer's input and output hidden states (for the reconstruction loss)."""
    inputs: list[torch.Tensor | None] = [None] * len(layers)
    outputs: list[torch.Tensor | None] = [None] * len(layers)
    handles = []
    for i, layer in enumerate(layers):

        def hook(module, args, kwargs, output, i=i):
            hidden = args[0] if args else kwargs.get("hidden_states", kwargs.get("x"))
            inputs[i] = first_tensor(hidden)
            outputs[i] = first_tensor(output)

        handles.append(layer.register_forward_hook(hook, with_kwargs=True))
    try:
        yield inputs, outputs
    finally:
        for handle in handles:
            handle.remove()


def run_two_passes(
    run_pass: Callable[[int], torch.Tensor],
    top_down: TopDownModule,
    steering: ValueSteering,
    *,
    first_pass_needs_grad: bool,
    layers: Sequence[nn.Module] | None = None,
    recon_coef: float = 0.0,
    recon_token_weights: torch.Tensor | None = None,
    folded: Callable[[torch.Tensor], list[torch.Tensor]] | None = None,
    fold: FoldChoice | None = None,
) -> TwoPassOutput:
    """Runs pass 1, the feedback, then pass 2 with every layer's value steered.

    Args:
        run_pass: ``run_pass(k)`` runs the backbone once (k = 0 or 1) and returns its tokens.
        first_pass_needs_grad: whether anything before the feedback trains. When it does not (``toast``,
            ``toast-lite``), pass 1 runs under ``torch.no_grad()`` and records no graph.
        layers: the backbone's layers, bottom first; needed only when ``recon_coef > 0``.
        recon_coef: weight of the reconstruction loss; at 0 nothing is recorded or computed.
        recon_token_weights: per-token weights of the reconstruction loss (B×N; see
            :meth:`TopDownModule.reconstruction_loss`); ``None``: a mean over every position.
        folded: a fold of this path (:class:`toast.folded.FoldedFeedback` for inference): every layer's value
            addition from one matmul (never with a reconstruction loss, which trains A_i).
        fold: chooses, for this call, between the folded path (:class:`toast.folded.FoldChoice`: where it costs
            less, with autograd through the fold in training) and the layer-by-layer one; ignored with ``folded``.
    """
    with torch.set_grad_enabled(torch.is_grad_enabled() and first_pass_needs_grad):
        first = run_pass(0)
    if folded is None and fold is not None:
        folded = fold(top_down, steering, first, recon_coef)
    if folded is not None:
        if recon_coef != 0:
            raise ValueError("folded feedback is for inference; the reconstruction loss needs the unfolded path")
        with steering.steer(folded(first), ready=True):
            second = run_pass(1)
        return TwoPassOutput(second, first)
    chained = top_down(first)  # select + feedback, as a module call (sharding engines gather p and T for it)
    if recon_coef == 0:
        with steering.steer(chained):
            second = run_pass(1)
        return TwoPassOutput(second, first)
    if layers is None:
        raise ValueError("a non-zero reconstruction coefficient needs the backbone's layers to record")
    with steering.steer(chained), record_layers(layers) as (inputs, outputs):
        second = run_pass(1)
    recon = recon_coef * top_down.reconstruction_loss(inputs, outputs, recon_token_weights)
    return TwoPassOutput(second, first, recon)
