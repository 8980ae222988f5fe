"""TOAST installed into a Hugging Face causal LM whose attention has a ``v_proj`` (LLaMA, Mistral, Qwen2, SmolLM2, ...).

The model stays the library's own: TOAST is installed into it, as ``peft`` installs adapters. The decoder
stack's ``forward`` runs twice: pass 1 reads the last layer's output *before* the final norm, the shared
top-down module turns it into one signal per layer, and pass 2 runs with ``v = W_v(a + td_i)`` through
hooks on each ``v_proj``. The causal-LM head, loss and ``generate`` are the library's. Each pass keeps its
own KV cache: one ``DynamicCache`` holds 2L layers (pass 1 uses 0..L-1, pass 2 uses L..2L-1, as the
original), and each pass sees a view of its half, so beam search and cache cropping act on both.
Building from a config (weights, which tensors train) is :mod:`language_generation.model`'s job.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer
from transformers.integrations import is_deepspeed_zero3_enabled

from toast import TopDownModule, ValueSteering, load_adapter, run_two_passes, save_adapter, value_proj_target
from toast.two_pass import first_tensor


def decoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """``model.model.layers``, checked: every layer needs ``self_attn.v_proj`` as an ``nn.Linear``."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    name = type(model).__name__
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ValueError(f"{name} has no decoder stack at model.model.layers; TOAST needs a LLaMA-style causal LM")
    for i, layer in enumerate(layers):
        v_proj = getattr(getattr(layer, "self_attn", None), "v_proj", None)
        if not isinstance(v_proj, nn.Linear):
            raise ValueError(
                f"{name} layer {i} has no self_attn.v_proj nn.Linear (found {type(v_proj).__name__}); TOAST steers "
                "each layer's attention value through that projection (LLaMA, Mistral, Qwen2, SmolLM2 have it)"
            )
    return layers


class TwoPassCache:
    """Helpers for the 2L-layer cache: pass ``k`` works on layers ``k·L .. k·L + L - 1`` through a view."""

    @staticmethod
    def prepare(cache: DynamicCache, config, num_layers: int) -> DynamicCache:
        if not isinstance(cache, DynamicCache):
            raise TypeError(f"TOAST generation keeps its two caches in one DynamicCache, got {type(cache).__name__}")
        if len(cache.layers) == 2 * num_layers:
            return cache
        if cache.get_seq_length() > 0:
            raise ValueError(
                f"this cache holds {len(cache.layers)} filled layers; a TOAST model needs {2 * num_layers} "
                "(one set per pass): pass the cache its own forward returned"
            )
        fresh = DynamicCache(config=config).layers
        if len(fresh) != num_layers:  # a config that does not describe its layers: plain growing layers
            fresh = [DynamicLayer() for _ in range(num_layers)]
        cache.layers = list(fresh) + [copy.deepcopy(layer) for layer in fresh]
        cache.layer_class_to_replicate = None
        return cache

    @staticmethod
    def view(cache: DynamicCache, index: int, num_layers: int) -> DynamicCache:
        part = DynamicCache.__new__(DynamicCache)
        part.__dict__.update(cache.__dict__)
        part.layers = cache.layers[index * num_layers : (index + 1) * num_layers]
        return part


class ToastCausalLM(nn.Module):
    """A causal LM with TOAST installed: ``forward`` and ``generate`` behave as the library's.

    Args:
        base: the Hugging Face causal LM (frozen by the transfer type, not here).
        top_down: the shared top-down module (width = hidden size, one decoder per layer).
        recon_coef: weight of ``Σ_i MSE(A_i(out_i)/s, in_i/s)`` added to the loss when labels are given.
    """

    def __init__(self, base: PreTrainedModel, top_down: TopDownModule, recon_coef: float = 0.0) -> None:
        super().__init__()
        layers = decoder_layers(base)
        if top_down.num_layers != len(layers) or top_down.dim != base.config.hidden_size:
            raise ValueError(
                f"the top-down module ({top_down.num_layers} layers, width {top_down.dim}) does not fit "
                f"{type(base).__name__} ({len(layers)} layers, hidden size {base.config.hidden_size})"
            )
        self.base = base
        self.top_down = top_down
        self.recon_coef = recon_coef
        self.recon_loss: torch.Tensor | None = None
        targets = [
            value_proj_target(f"model.layers.{i}.self_attn.v_proj", layer.self_attn.v_proj)
            for i, layer in enumerate(layers)
        ]
        self.steering = ValueSteering(top_down, targets, double_bias=False)
        if is_deepspeed_zero3_enabled():
            _register_zero3_reads(top_down, targets)
        self._loss_requested = False
        inner = base.model
        inner.forward = TwoPassDecoderForward(self, inner)

    # -- transformers-like surface ---------------------------------------------------------------------
    @property
    def config(self):
        return self.base.config

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def _no_split_modules(self):
        """The decoder-layer classes FSDP's auto-wrap policy wraps (the base model's own list)."""
        return self.base._no_split_modules

    @property
    def loss_type(self):
        """The base model's loss type: the ``Trainer`` then counts ``num_items_in_batch`` over shifted labels,
        as the library's causal-LM loss divides by them."""
        return self.base.loss_type

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ):
        """The library's causal-LM forward (shifted CE over non -100 labels), plus ``recon_coef × R``.

        Under gradient accumulation and several processes the ``Trainer`` passes ``num_items_in_batch``
        (the supervised tokens of the whole optimizer step): the CE becomes a sum over this micro-batch
        divided by it, and the micro-batch losses are summed. ``R`` (a mean per micro-batch) is weighted by
        this micro-batch's share of those tokens, so that it keeps its coefficient however the step is split.
        """
        self.recon_loss = None
        if num_items_in_batch is not None:
            kwargs["num_items_in_batch"] = num_items_in_batch
        self._loss_requested = labels is not None  # R: computed when its coefficient is > 0 and labels given
        try:
            out = self.base(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)
        finally:
            self._loss_requested = False
        if self.recon_loss is not None and out.loss is not None:
            out.loss = out.loss + self.recon_loss * _share_of_step(labels, num_items_in_batch)
        return out

    def generate(self, *args, **kwargs):
        return self.base.generate(*args, **kwargs)

    def unload(self) -> PreTrainedModel:
        """Takes TOAST out (steering hooks, two-pass forward) and returns the base model as it was before."""
        self.steering.remove()
        if isinstance(self.base.model.__dict__.get("forward"), TwoPassDecoderForward):
            del self.base.model.forward
        return self.base

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs) -> None:
        """The library's activation checkpointing, non-reentrant, with the top-down signal replayed when a
        checkpointed layer is recomputed in the backward pass."""
        options = dict(gradient_checkpointing_kwargs or {})
        if options.get("use_reentrant"):
            raise ValueError("TOAST needs non-reentrant checkpointing (use_reentrant=False) to replay its signal")
        options.update(use_reentrant=False, context_fn=self.steering.checkpoint_contexts)
        self.base.activation_checkpointing_enable(activation_checkpointing_kwargs=options, **kwargs)
        self._checkpointing_replays_signal = True

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None, **kwargs) -> None:
        """transformers' newer name for :meth:`gradient_checkpointing_enable`."""
        self.gradient_checkpointing_enable(activation_checkpointing_kwargs, **kwargs)

    def gradient_checkpointing_disable(self) -> None:
        self.base.gradient_checkpointing_disable()
        self._checkpointing_replays_signal = False

    def _first_pass_needs_grad(self) -> bool:
        return any(p.requires_grad for p in self.base.parameters())

    # -- adapters --------------------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole top-down module (frozen parts too: a fresh A_i is random) and anything else that trains."""
        tensors = {f"top_down.{n}": t for n, t in self.top_down.state_dict(keep_vars=True).items()}
        tensors.update({f"base.{n}": p for n, p in self.base.named_parameters() if p.requires_grad})
        return tensors

    def adapter_config(self) -> dict:
        return {
            "base_model": self.base.config._name_or_path,
            "model_type": self.base.config.model_type,
            "num_layers": self.top_down.num_layers,
            "hidden_size": self.top_down.dim,
            "low_rank": self.top_down.decoders[0].down.lora_a is not None,
        }

    def save_adapter(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None, **extra) -> Path:
        """Writes the adapter. ``state_dict``: this model's full state dict as a sharding engine gathered it
        (ZeRO-3, FSDP), whose adapter entries replace the local, possibly partitioned, tensors."""
        source = self if state_dict is None else _GatheredAdapter(self, state_dict)
        return save_adapter(source, directory, {**self.adapter_config(), **extra})

    def load_adapter(self, directory: str | Path, check_base_name: bool = True) -> dict:
        """Loads an adapter; ``check_base_name`` False when the caller matched the base model by content
        (``generate``: a copy of the base elsewhere is the same model)."""
        expect = {k: v for k, v in self.adapter_config().items() if k != "base_model"}
        config = load_adapter(self, directory, expect=expect)
        if check_base_name and config.get("base_model") != self.adapter_config()["base_model"]:
            raise ValueError(
                f"adapter {directory} was trained on {config.get('base_model')!r}, "
                f"this model is {self.adapter_config()['base_model']!r}"
            )
        return config


class _GatheredAdapter:
    """The adapter entries of a gathered full state dict, in the shape :func:`toast.save_adapter` reads."""

    def __init__(self, model: ToastCausalLM, state_dict: dict[str, torch.Tensor]) -> None:
        self.model = model
        self.state_dict = state_dict

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        names = list(self.model.adapter_state_dict())
        missing = [name for name in names if name not in self.state_dict]
        if missing:
            raise ValueError(
                f"the gathered state dict lacks the adapter tensors {missing[:5]} "
                f"({len(missing)} of {len(names)}); it has e.g. {list(self.state_dict)[:5]}"
            )
        return {name: self.state_dict[name] for name in names}


def _share_of_step(labels: torch.Tensor | None, num_items_in_batch) -> torch.Tensor | float:
    """This micro-batch's supervised (shifted) tokens over those of the whole optimizer step; 1 without a count."""
    if num_items_in_batch is None or labels is None:
        return 1.0
    return labels[..., 1:].ne(-100).sum() / num_items_in_batch


def _register_zero3_reads(top_down: TopDownModule, targets) -> None:
    """Under ZeRO-3 a parameter is whole only while a module that owns (or registered) it runs. B_i (and its
    low-rank update) is read inside layer i's ``v_proj`` forward hook, so it is registered with that ``v_proj``:
    gathered for its forward and backward, released after. (DeepSpeed 0.19 also fetches a partitioned tensor
    read during any forward and ties it to the running module, here the whole decoder stack, which would keep
    every B_i gathered through both passes.) ``p`` and ``T`` are read inside ``top_down``'s own forward, A_i
    inside its own module."""
    import deepspeed

    for decoder, target in zip(top_down.decoders, targets):
        for tensor in decoder.to_value.parameters():
            deepspeed.zero.register_external_parameter(target.module, tensor)


class TwoPassDecoderForward:
    """Replaces the decoder stack's ``forward``: the stack runs twice, one cache half per pass, pass 2 steered.

    An object rather than a closure (as the steering hooks are), so that ``copy.deepcopy`` and pickling of
    the model carry it along with the copy's own top-down path, and :meth:`ToastCausalLM.unload` can take it
    away again. The passes go through the shared driver :func:`toast.run_two_passes`.
    """

    def __init__(self, wrapper: ToastCausalLM, inner: nn.Module) -> None:
        self.wrapper = wrapper
        self.inner = inner

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        **kwargs,
    ):
        inner, wrapper = self.inner, self.wrapper
        original_forward = type(inner).forward
        checkpointing = any(getattr(layer, "gradient_checkpointing", False) for layer in inner.layers)
        if checkpointing and inner.training and not getattr(wrapper, "_checkpointing_replays_signal", False):
            raise RuntimeError(
                "enable gradient checkpointing through the TOAST model (model.gradient_checkpointing_enable()), "
                "so that recomputed layers get the top-down signal again"
            )
        layers = inner.layers
        num_layers = len(layers)
        if use_cache is None:  # as the library decides, so that the cache returned is one a next call accepts
            use_cache = getattr(inner.config, "use_cache", False) and not (checkpointing and inner.training)
        if inputs_embeds is None:
            inputs_embeds = inner.embed_tokens(input_ids)
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=inner.config)
        views = [None, None]
        if past_key_values is not None:
            past_key_values = TwoPassCache.prepare(past_key_values, inner.config, num_layers)
            views = [TwoPassCache.view(past_key_values, k, num_layers) for k in (0, 1)]
        if position_ids is None:
            seen = views[0].get_seq_length() if views[0] is not None else 0
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + seen).unsqueeze(0)
        common = dict(attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache, **kwargs)
        outputs = {}

        def keep_last_output(module, args, output):
            outputs["z"] = first_tensor(output)

        def run_pass(k: int) -> torch.Tensor:
            if k == 1:
                outputs["out"] = original_forward(
                    inner, inputs_embeds=inputs_embeds, past_key_values=views[1], **common
                )
                return outputs["out"].last_hidden_state
            handle = layers[-1].register_forward_hook(keep_last_output)  # z: before the final norm
            try:
                original_forward(inner, inputs_embeds=inputs_embeds, past_key_values=views[0], **common)
            finally:
                handle.remove()
            return outputs["z"]

        result = run_two_passes(
            run_pass,
            wrapper.top_down,
            wrapper.steering,
            first_pass_needs_grad=wrapper._first_pass_needs_grad(),
            layers=list(layers),
            recon_coef=wrapper.recon_coef if wrapper._loss_requested else 0.0,
        )
        wrapper.recon_loss = result.recon_loss
        out = outputs["out"]
        out.past_key_values = past_key_values if use_cache else None
        return out
