"""TOAST installed into a Hugging Face causal LM whose attention has a ``v_proj`` (LLaMA, Mistral, Qwen2, SmolLM2, ...).

The model stays the library's own: TOAST is installed into it, as ``peft`` installs adapters. The decoder
stack's ``forward`` runs twice: pass 1 reads the last layer's output *before* the final norm, the shared
top-down module turns it into one signal per layer, and pass 2 runs with ``v = W_v(a + td_i)`` through
hooks on each ``v_proj``. ``generate`` is the library's; ``forward`` applies the library's head and loss to
pass 2 and returns the reconstruction loss in its output. Each pass keeps its own KV cache, both held by one
:class:`~language_generation.two_pass_cache.TwoPassCache` (dynamic or static), so beam search and cache
cropping act on both. Nothing in one decoding step breaks a ``torch.compile`` graph: the hooks are installed
once, the cache is a library ``Cache``, and the reconstruction loss travels in the output. ``generate`` folds
the frozen top-down path into one matrix (:mod:`toast.folded`). Building from a config (weights, which tensors
train) is :mod:`language_generation.model`'s job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from toast.adapter import load_adapter, save_adapter
from toast.folded import FoldChoice, FoldedFeedback, folded_inference
from toast.steering import ValueSteering, value_proj_target
from toast.topdown import TopDownModule
from toast.two_pass import first_tensor, run_two_passes

from .two_pass_cache import TwoPassCache


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


@dataclass
class TwoPassModelOutput(BaseModelOutputWithPast):
    """The decoder stack's output (pass 2), plus ``recon_loss``: ``recon_coef × R`` when it was asked for."""

    recon_loss: torch.FloatTensor | None = None


@dataclass
class ToastCausalLMOutput(CausalLMOutputWithPast):
    """The library's causal-LM output plus ``recon_loss`` (``recon_coef × R``, already inside ``loss``)."""

    recon_loss: torch.FloatTensor | None = None


class ToastCausalLM(nn.Module):
    """A causal LM with TOAST installed: ``forward`` and ``generate`` behave as the library's.

    Args:
        base: the Hugging Face causal LM (frozen by the transfer type, not here).
        top_down: the shared top-down module (width = hidden size, one decoder per layer).
        recon_coef: weight of ``Σ_i MSE(A_i(out_i)/s, in_i/s)`` added to the loss when labels are given.
        base_requires_grad: ``requires_grad`` of the base's parameters before the transfer type froze them,
            given back by :meth:`unload`.
        fold: when the top-down path runs folded into one matrix outside generation (``MODEL.TOAST.FOLD``;
            default: where it costs less, :class:`toast.folded.FoldChoice`).
    """

    def __init__(
        self,
        base: PreTrainedModel,
        top_down: TopDownModule,
        recon_coef: float = 0.0,
        base_requires_grad: dict[str, bool] | None = None,
        fold: FoldChoice | None = None,
    ) -> None:
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
        targets = [
            value_proj_target(f"model.layers.{i}.self_attn.v_proj", layer.self_attn.v_proj)
            for i, layer in enumerate(layers)
        ]
        self.steering = ValueSteering(top_down, targets, double_bias=False)
        self._base_requires_grad = dict(base_requires_grad or {})
        self._zero3_reads = _register_zero3_reads(top_down, targets) if is_deepspeed_zero3_enabled() else []
        self._folded: FoldedFeedback | None = None  # the fold of the path, kept while its tensors are unchanged
        self._fold_in_use = False  # True inside generate: the two-pass forward then uses the fold
        self.fold_choice = fold if fold is not None else FoldChoice()
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
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        num_items_in_batch: torch.Tensor | int | None = None,
        tokens_in_step: torch.Tensor | int | None = None,
        **kwargs,
    ) -> ToastCausalLMOutput:
        """The library's causal-LM forward (head, shifted CE over non -100 labels), plus ``recon_coef × R``,
        which the output also carries as ``recon_loss`` (computed when its coefficient is > 0 and labels are
        given).

        Under gradient accumulation and several processes the ``Trainer`` passes ``num_items_in_batch``
        (the supervised tokens of the whole optimizer step): the CE becomes a sum over this micro-batch
        divided by it, and the micro-batch losses are summed. ``R`` (a mean per micro-batch) is weighted by
        this micro-batch's share of those tokens, so that it keeps its coefficient however the step is split.

        ``R`` is a masked sum over real tokens (``attention_mask``), divided by ``tokens_in_step``, the real
        tokens of the whole optimizer step (:class:`~language_generation.train.ToastTrainer` passes it), so
        that k × batch 1 equals batch k with padded examples too. Without it, ``R`` is the mean over this
        micro-batch's real tokens, weighted as above.
        """
        recon_coef = self.recon_coef if labels is not None else 0.0
        token_weights, share = None, 1.0
        if recon_coef:
            real = _real_tokens(input_ids, attention_mask, inputs_embeds)
            if tokens_in_step is not None:
                token_weights = real / tokens_in_step
            else:
                token_weights = real / real.sum().clamp(min=1)
                share = _share_of_step(labels, num_items_in_batch)
        if num_items_in_batch is not None:
            kwargs["num_items_in_batch"] = num_items_in_batch
        out = self.base.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            recon_coef=recon_coef,
            recon_token_weights=token_weights,
            **kwargs,
        )
        logits = self._head(out.last_hidden_state, logits_to_keep)
        loss = None
        if labels is not None:
            loss = self.base.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
            if out.recon_loss is not None:
                loss = loss + out.recon_loss * share
        return ToastCausalLMOutput(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            recon_loss=out.recon_loss,
        )

    def _head(self, hidden: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
        """The causal LM's own head on the kept positions (as its forward: ``lm_head``, then any final soft cap)."""
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.base.lm_head(hidden[:, keep, :])
        cap = getattr(self.config, "final_logit_softcapping", None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @torch.no_grad()
    def generate(self, *args, **kwargs):
        """The library's ``generate`` under :meth:`folded_feedback`. ``cache_implementation="static"`` gives a
        static cache per pass (and, with a ``compile_config``, a compiled decoding step)."""
        with self.folded_feedback():
            return self.base.generate(*args, **kwargs)

    @contextlib.contextmanager
    def folded_feedback(self) -> Iterator[None]:
        """Forwards without autograd inside use the top-down path folded into one matrix (:mod:`toast.folded`),
        formed once per loaded adapter and again when one of its tensors changes; with autograd, never."""
        with folded_inference(self):
            yield

    def unload(self) -> PreTrainedModel:
        """Takes TOAST out and returns the base model as it was before: steering hooks, two-pass forward (and its
        last-layer tap), ZeRO-3 registrations of B_i with the ``v_proj``s, the checkpointing TOAST enabled (its
        recompute replays the signal), and each parameter's ``requires_grad``."""
        self.steering.remove()
        forward = self.base.model.__dict__.get("forward")
        if isinstance(forward, TwoPassDecoderForward):
            forward.tap_handle.remove()
            del self.base.model.forward
        if self._zero3_reads:
            from deepspeed.runtime.zero.partition_parameters import unregister_external_parameter

            for module, tensor in self._zero3_reads:
                unregister_external_parameter(module, tensor)
            self._zero3_reads = []
        if getattr(self, "_checkpointing_replays_signal", False):
            self.gradient_checkpointing_disable()
        for name, p in self.base.named_parameters():
            if name in self._base_requires_grad:
                p.requires_grad_(self._base_requires_grad[name])
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

    @property
    def needs_tokens_in_step(self) -> bool:
        """The ``Trainer`` passes the optimizer step's real-token count (``tokens_in_step``) to a model with a
        reconstruction loss, which divides that loss by it."""
        return bool(self.recon_coef)

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
            "low_rank_scale": self.top_down.decoders[0].down.lora_scale,  # merges Lite's updates on reuse
        }

    def save_adapter(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None, **extra) -> Path:
        """Writes the adapter. ``state_dict``: this model's full state dict as a sharding engine gathered it
        (ZeRO-3, FSDP), whose adapter entries replace the local, possibly partitioned, tensors."""
        source = self if state_dict is None else _GatheredAdapter(self, state_dict)
        return save_adapter(source, directory, {**self.adapter_config(), **extra})

    def load_adapter(self, directory: str | Path, check_base_name: bool = True) -> dict:
        """Loads an adapter; ``check_base_name`` False when the caller matched the base model by content
        (``generate``: a copy of the base elsewhere is the same model)."""
        expect = {k: v for k, v in self.adapter_config().items() if k not in ("base_model", "low_rank_scale")}
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


def _real_tokens(input_ids, attention_mask, inputs_embeds) -> torch.Tensor:
    """1.0 on real tokens, 0.0 on padding (B×T, fp32); all ones without an attention mask."""
    if attention_mask is not None and attention_mask.dim() == 2:
        return attention_mask.float()
    shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
    device = (input_ids if input_ids is not None else inputs_embeds).device
    return torch.ones(shape, device=device)


def _share_of_step(labels: torch.Tensor | None, num_items_in_batch) -> torch.Tensor | float:
    """This micro-batch's supervised (shifted) tokens over those of the whole optimizer step; 1 without a count."""
    if num_items_in_batch is None or labels is None:
        return 1.0
    return labels[..., 1:].ne(-100).sum() / num_items_in_batch


def _register_zero3_reads(top_down: TopDownModule, targets) -> list[tuple[nn.Module, nn.Parameter]]:
    """Under ZeRO-3 a parameter is whole only while a module that owns (or registered) it runs. B_i (and its
    low-rank update) is read inside layer i's ``v_proj`` forward hook, so it is registered with that ``v_proj``:
    gathered for its forward and backward, released after. (DeepSpeed 0.19 also fetches a partitioned tensor
    read during any forward and ties it to the running module, here the whole decoder stack, which would keep
    every B_i gathered through both passes.) ``p`` and ``T`` are read inside ``top_down``'s own forward, A_i
    inside its own module. Returns the registrations, which :meth:`ToastCausalLM.unload` takes back."""
    import deepspeed

    registered = []
    for decoder, target in zip(top_down.decoders, targets):
        for tensor in decoder.to_value.parameters():
            deepspeed.zero.register_external_parameter(target.module, tensor)
            registered.append((target.module, tensor))
    return registered


class _LastLayerTap:
    """A forward hook on the last decoder layer that keeps its output (``z``, before the final norm).

    Installed once with TOAST, not per call: registering a hook inside a step would break a compiled graph."""

    def __init__(self) -> None:
        self.output: torch.Tensor | None = None

    def __call__(self, module: nn.Module, args: tuple, output) -> None:
        self.output = first_tensor(output)

    def take(self) -> torch.Tensor:
        output, self.output = self.output, None
        if output is None:
            raise RuntimeError("the last decoder layer did not run, so pass 1 gave no tokens to the top-down path")
        return output


class TwoPassDecoderForward:
    """Replaces the decoder stack's ``forward``: the stack runs twice, one cache per pass, pass 2 steered.

    An object rather than a closure (as the steering hooks are), so that ``copy.deepcopy`` and pickling of
    the model carry it along with the copy's own top-down path, and :meth:`ToastCausalLM.unload` can take it
    away again. The passes go through the shared driver :func:`toast.run_two_passes`. Returns the library's
    decoder output for pass 2 with ``recon_loss`` added (:class:`TwoPassModelOutput`).
    """

    def __init__(self, wrapper: ToastCausalLM, inner: nn.Module) -> None:
        self.wrapper = wrapper
        self.inner = inner
        self.tap = _LastLayerTap()
        self.tap_handle = inner.layers[-1].register_forward_hook(self.tap)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        recon_coef: float = 0.0,
        recon_token_weights: torch.Tensor | None = None,
        **kwargs,
    ) -> TwoPassModelOutput:
        inner, wrapper = self.inner, self.wrapper
        original_forward = type(inner).forward
        checkpointing = any(getattr(layer, "gradient_checkpointing", False) for layer in inner.layers)
        if checkpointing and inner.training and not getattr(wrapper, "_checkpointing_replays_signal", False):
            raise RuntimeError(
                "enable gradient checkpointing through the TOAST model (model.gradient_checkpointing_enable()), "
                "so that recomputed layers get the top-down signal again"
            )
        if use_cache is None:  # as the library decides, so that the cache returned is one a next call accepts
            use_cache = getattr(inner.config, "use_cache", False) and not (checkpointing and inner.training)
        if inputs_embeds is None:
            inputs_embeds = inner.embed_tokens(input_ids)
        if use_cache and past_key_values is None:
            past_key_values = TwoPassCache.dynamic(inner.config)
        caches = (None, None)
        if past_key_values is not None:
            past_key_values = TwoPassCache.pair_with_twin(past_key_values, inner.config)
            caches = past_key_values.passes()
        if position_ids is None:
            seen = caches[0].get_seq_length() if caches[0] is not None else 0
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + seen).unsqueeze(0)
        common = dict(attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache, **kwargs)
        outputs = {}

        def run_pass(k: int) -> torch.Tensor:
            outputs[k] = original_forward(inner, inputs_embeds=inputs_embeds, past_key_values=caches[k], **common)
            z = self.tap.take()  # the last layer's output before the final norm
            return z if k == 0 else outputs[k].last_hidden_state

        fold = wrapper._folded if wrapper._fold_in_use and not torch.is_grad_enabled() else None
        result = run_two_passes(
            run_pass,
            wrapper.top_down,
            wrapper.steering,
            first_pass_needs_grad=wrapper._first_pass_needs_grad(),
            layers=list(inner.layers),
            recon_coef=recon_coef,
            recon_token_weights=recon_token_weights,
            folded=fold,
            fold=wrapper.fold_choice,
        )
        out = outputs[1]
        return TwoPassModelOutput(
            last_hidden_state=out.last_hidden_state,
            past_key_values=past_key_values if use_cache else None,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            recon_loss=result.recon_loss,
        )
