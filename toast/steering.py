"""Value steering: adds the top-down signal to each layer's attention value, in the second pass only.

A forward hook on each layer's value projection (the fused ``qkv`` of a timm ViT, ``v_proj`` of a
LLaMA) adds ``W_v · B_i · u_i`` (``+ b_v`` once more with ``double_bias``, as the original ViT does)
to the value slice of that projection's output, in place. The backbone keeps its own attention code
(fused SDPA, flash attention) and its own weights; queries and keys are untouched. Outside
:meth:`ValueSteering.steer` the hooks do nothing.

``B_i`` and ``W_v`` are folded into one matrix when that costs less than applying them one after
the other (many tokens), so the injection is a single matmul in training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .topdown import TopDownModule


@dataclass
class ValueTarget:
    """Where layer i's attention value is computed.

    Attributes:
        name: the module's qualified name, for error messages.
        module: an ``nn.Linear`` whose output holds the value (alone, or as one slice of a fused q/k/v output).
        value_rows: rows of ``module.weight`` (and entries of its bias / output features) that form the value.
    """

    name: str
    module: nn.Linear
    value_rows: slice

    def value_weight(self) -> torch.Tensor:
        return self.module.weight[self.value_rows]

    def value_bias(self) -> torch.Tensor | None:
        bias = self.module.bias
        return None if bias is None else bias[self.value_rows]


def fused_qkv_target(name: str, qkv: nn.Module) -> ValueTarget:
    """The value slice of a fused ``[q; k; v]`` projection (timm's ``attn.qkv``)."""
    if not isinstance(qkv, nn.Linear):
        raise TypeError(f"{name} must be an nn.Linear fused q/k/v projection, got {type(qkv).__name__}")
    if qkv.out_features % 3:
        raise ValueError(
            f"{name} has {qkv.out_features} output features; a fused q/k/v projection needs a multiple of 3"
        )
    width = qkv.out_features // 3
    return ValueTarget(name, qkv, slice(2 * width, 3 * width))


def value_proj_target(name: str, v_proj: nn.Module) -> ValueTarget:
    """A separate value projection (``self_attn.v_proj`` in Hugging Face decoders)."""
    if not isinstance(v_proj, nn.Linear):
        raise TypeError(f"{name} must be an nn.Linear value projection, got {type(v_proj).__name__}")
    return ValueTarget(name, v_proj, slice(0, v_proj.out_features))


class ValueSteering:
    """Hooks that inject the top-down signal into the value projections during :meth:`steer`.

    Args:
        top_down: the module whose ``B_i`` produce the signals.
        targets: one value projection per layer, bottom layer first (``len == top_down.num_layers``).
        double_bias: add the value bias once more with the signal (the original ViT's ``W_v td + b_v``).
    """

    def __init__(self, top_down: TopDownModule, targets: Sequence[ValueTarget], double_bias: bool = False) -> None:
        if len(targets) != top_down.num_layers:
            raise ValueError(
                f"value steering needs one value projection per top-down layer: "
                f"{top_down.num_layers} decoders, {len(targets)} targets"
            )
        for target in targets:
            in_dim = target.module.in_features
            if in_dim != top_down.dim:
                raise ValueError(
                    f"{target.name} takes {in_dim} features; the top-down module has width {top_down.dim}"
                )
            if double_bias and target.module.bias is None:
                raise ValueError(f"double_bias needs a value bias, but {target.name} has none")
        self.top_down = top_down
        self.targets = list(targets)
        self.double_bias = double_bias
        self._chained: Sequence[torch.Tensor] | None = None
        self._ready = False  # True while _chained holds ready value additions (folded feedback), not u_i
        self._calls = [0] * len(self.targets)
        self._handles = [
            target.module.register_forward_hook(_SteeringHook(self, i)) for i, target in enumerate(self.targets)
        ]

    def _inject(self, layer: int, output: torch.Tensor) -> None:
        """Adds ``W_v · B_i · u_i (+ b_v)`` straight into the value columns of the projection's output."""
        if self._chained is None:
            return
        self._calls[layer] += 1
        rows = self.targets[layer].value_rows
        whole = rows.start == 0 and rows.stop == output.shape[-1]  # a separate v_proj: no slicing op needed
        value = output if whole else output[..., rows]
        chained = self._chained[layer]
        if self._ready:  # W_v·B_i·u_i (+ b_v) already formed by the folded feedback
            if chained.shape != value.shape:
                chained = chained.reshape(value.shape)
            value.add_(chained if chained.dtype == value.dtype else chained.to(value.dtype))
            return
        signal = chained.reshape(-1, chained.shape[-1])
        if value.dtype == signal.dtype:  # the usual case, autocast included: no temporary at all
            self._add_injection(value.view(signal.shape[0], -1), layer, signal)
        else:  # e.g. a bf16 backbone fed an fp32 signal: build it in the signal's precision, then add
            injected = signal.new_zeros(signal.shape[0], value.shape[-1])
            self._add_injection(injected, layer, signal)
            value.add_(injected.view(value.shape).to(value.dtype))

    def _add_injection(self, out: torch.Tensor, layer: int, signal: torch.Tensor) -> None:
        """``out += W_v·B_i·signal (+ b_v)`` for 2-D ``out``; W_v·B_i folded into one matrix when there are
        more rows than value features (training), applied one after the other otherwise (generation)."""
        target = self.targets[layer]
        value_weight = target.value_weight().to(signal.dtype)
        to_value = self.top_down.decoders[layer].to_value
        if signal.shape[0] >= value_weight.shape[0]:
            out.addmm_(signal, (value_weight @ to_value.weight.to(signal.dtype)).t())
            if to_value.lora_a is not None:  # TOAST-Lite: W_v·b·a kept low-rank, so no C×C gradient
                low = F.linear(signal, to_value.lora_a.to(signal.dtype))
                out.addmm_(low, (value_weight @ to_value.lora_b.to(signal.dtype)).t(), alpha=to_value.lora_scale)
        else:
            out.addmm_(to_value(signal), value_weight.t())
        if self.double_bias:
            out.add_(target.value_bias().to(out.dtype))

    @contextlib.contextmanager
    def steer(self, chained: Sequence[torch.Tensor], ready: bool = False) -> Iterator[None]:
        """Injects ``u_i`` (from :meth:`TopDownModule.feedback`) while the block runs, and checks every layer got it.

        ``ready``: ``chained`` holds each layer's value addition ``W_v·B_i·u_i (+ b_v)`` itself (from
        :class:`toast.folded.FoldedFeedback`), added as it is.
        """
        if len(chained) != len(self.targets):
            raise ValueError(f"steer() needs {len(self.targets)} per-layer signals, got {len(chained)}")
        if self._chained is not None:
            raise RuntimeError("value steering is already active; steer() cannot be nested")
        self._chained = chained
        self._ready = ready
        self._calls = [0] * len(self.targets)
        try:
            yield
        finally:
            self._chained = None
            self._ready = False
        missed = [t.name for t, calls in zip(self.targets, self._calls) if calls == 0]
        if missed:
            raise RuntimeError(
                f"the top-down signal never reached {', '.join(missed)}: the backbone computed its attention "
                "without calling these value projections as modules, so TOAST cannot steer it"
            )

    def checkpoint_contexts(self) -> tuple:
        """``context_fn`` for ``torch.utils.checkpoint`` (non-reentrant): the recomputation of a checkpointed
        layer in the backward pass sees the same signal its forward saw (the original's LLaMA lost it)."""
        return contextlib.nullcontext(), self._replay(self._chained, self._ready)

    @contextlib.contextmanager
    def _replay(self, chained: Sequence[torch.Tensor] | None, ready: bool) -> Iterator[None]:
        previous = self._chained, self._ready
        self._chained, self._ready = chained, ready
        try:
            yield
        finally:
            self._chained, self._ready = previous

    def remove(self) -> None:
        """Detaches the hooks, leaving the backbone as it was."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


class _SteeringHook:
    """A forward hook as an object, not a closure, so that ``copy.deepcopy`` of a model steers the copy."""

    def __init__(self, steering: ValueSteering, layer: int) -> None:
        self.steering = steering
        self.layer = layer

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.steering._inject(self.layer, output)
