"""TOAST on any Hugging Face causal LM whose attention has a ``v_proj`` (LLaMA, Mistral, Qwen2, SmolLM2, ...).

The model stays the library's own: TOAST is installed into it, as ``peft`` installs adapters. The decoder
stack's ``forward`` runs twice: pass 1 reads the last layer's output *before* the final norm, the shared
top-down module turns it into one signal per layer, and pass 2 runs with ``v = W_v(a + td_i)`` through
hooks on each ``v_proj``. The causal-LM head, loss and ``generate`` are the library's. Each pass keeps its
own KV cache: one ``DynamicCache`` holds 2L layers (pass 1 uses 0..L-1, pass 2 uses L..2L-1, as the
original), and each pass sees a view of its half, so beam search and cache cropping act on both.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer
from transformers.integrations import is_deepspeed_zero3_enabled
from yacs.config import CfgNode

from toast import (
    TopDownModule,
    ValueSteering,
    convert_original_top_down,
    is_original_top_down_key,
    load_adapter,
    load_top_down_state,
    read_adapter_top_down,
    run_two_passes,
    save_adapter,
    value_proj_target,
)
from toast.two_pass import first_tensor

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TRANSFER_TYPES = ("toast", "toast-lite", "lora", "full")
TRAINABLE_PARTS = {"to_value", "down", "prompt", "transform"}
TRAINABLE_DTYPES = ("float32", "base")
DECODER_INITS = ("normal", "zero_to_value")
# MODEL.TOAST.TRAIN "auto": what trains when the config does not say.
ORIGINAL_TUNING_SET = ["to_value", "prompt"]  # the original's final recipe, which assumes a pre-tuned A_i
FRESH_PATH_SET = ["down", "to_value", "prompt"]  # a fresh A_i must learn too (a frozen random chain carries nothing)


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

    def load_adapter(self, directory: str | Path) -> dict:
        expect = {k: v for k, v in self.adapter_config().items() if k != "base_model"}
        config = load_adapter(self, directory, expect=expect)
        if config.get("base_model") != self.adapter_config()["base_model"]:
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


# ---------------------------------------------------------------------------------------------------
# Building from a config
# ---------------------------------------------------------------------------------------------------


def _check_cfg(cfg: CfgNode) -> None:
    problems = []
    if not cfg.MODEL.NAME_OR_PATH:
        problems.append("MODEL.NAME_OR_PATH is empty (a hub name or a local model folder)")
    if cfg.MODEL.TRANSFER_TYPE not in TRANSFER_TYPES:
        problems.append(f"MODEL.TRANSFER_TYPE={cfg.MODEL.TRANSFER_TYPE!r}; choose one of {list(TRANSFER_TYPES)}")
    if cfg.MODEL.DTYPE not in DTYPES:
        problems.append(f"MODEL.DTYPE={cfg.MODEL.DTYPE!r}; choose one of {list(DTYPES)}")
    problems += _toast_cfg_problems(cfg)
    if problems:
        raise ValueError("bad language config: " + "; ".join(problems))


def _toast_cfg_problems(cfg: CfgNode) -> list[str]:
    problems = []
    parts = list(cfg.MODEL.TOAST.TRAIN)
    if parts != ["auto"]:
        unknown = set(parts) - TRAINABLE_PARTS
        if unknown:
            problems.append(
                f"MODEL.TOAST.TRAIN has {sorted(unknown)}; parts are {sorted(TRAINABLE_PARTS)} (or ['auto'])"
            )
    if cfg.MODEL.TRAINABLE_DTYPE not in TRAINABLE_DTYPES:
        problems.append(f"MODEL.TRAINABLE_DTYPE={cfg.MODEL.TRAINABLE_DTYPE!r}; choose one of {list(TRAINABLE_DTYPES)}")
    if cfg.MODEL.TOAST.DECODER_INIT not in DECODER_INITS:
        problems.append(
            f"MODEL.TOAST.DECODER_INIT={cfg.MODEL.TOAST.DECODER_INIT!r}; choose one of {list(DECODER_INITS)}"
        )
    return problems


def load_base_model(cfg: CfgNode) -> PreTrainedModel:
    kwargs = {"dtype": DTYPES[cfg.MODEL.DTYPE], "trust_remote_code": cfg.MODEL.TRUST_REMOTE_CODE}
    if cfg.MODEL.ATTN_IMPLEMENTATION:
        kwargs["attn_implementation"] = cfg.MODEL.ATTN_IMPLEMENTATION
    return AutoModelForCausalLM.from_pretrained(cfg.MODEL.NAME_OR_PATH, **kwargs)


def read_top_down_weights(path: str) -> tuple[dict[str, torch.Tensor], str]:
    """Top-down tensors from an adapter folder or an original-release file (``model.decoders.*`` keys)."""
    source = Path(path)
    if source.is_dir():
        return read_adapter_top_down(source)
    if not source.is_file():
        raise FileNotFoundError(f"MODEL.TOPDOWN_WEIGHTS={path!r} does not exist")
    state = torch.load(source, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    prefix = "model." if any(k.startswith("model.decoders.") for k in state) else ""
    top_down = convert_original_top_down(state, prefix)
    others = sum(1 for k in state if not is_original_top_down_key(k, prefix))
    if others:
        logger.info("%s: ignoring %d tensors that are not part of the top-down path", source, others)
    if not top_down:
        raise ValueError(
            f"{source} holds no top-down tensors (model.decoders.*, model.prompt, model.top_down_transform)"
        )
    return top_down, str(source)


def trained_parts(cfg: CfgNode) -> list[str]:
    """The top-down parts that train: ``MODEL.TOAST.TRAIN``, or for ``['auto']`` a set that learns.

    With pre-tuned weights (``MODEL.TOPDOWN_WEIGHTS``) ``toast`` trains B_i and p, the original's final
    recipe. Without them A_i is random: its chain of L random maps carries almost nothing to the lower
    layers, and frozen it never learns to (measured: loss flat), so A_i trains too. ``toast-lite`` trains
    the low-rank updates of A_i and B_i, and p, as the original's ``mark_only_lora_as_trainable`` + prompt.
    """
    parts = list(cfg.MODEL.TOAST.TRAIN)
    if parts != ["auto"]:
        logger.info("top-down parts trained: %s (MODEL.TOAST.TRAIN)", parts)
        return parts
    if cfg.MODEL.TRANSFER_TYPE == "toast-lite":
        why = "toast-lite: the low-rank updates of A_i and B_i, and p, as the original"
        parts = FRESH_PATH_SET
    elif cfg.MODEL.TOPDOWN_WEIGHTS:
        why = "pre-tuned weights given: B_i and p, the original's recipe"
        parts = ORIGINAL_TUNING_SET
    else:
        why = "no MODEL.TOPDOWN_WEIGHTS: a fresh, frozen A_i would learn nothing, so A_i trains with B_i and p"
        parts = FRESH_PATH_SET
    logger.info("top-down parts trained: %s (MODEL.TOAST.TRAIN auto; %s)", parts, why)
    return parts


def attach_toast(base: PreTrainedModel, cfg: CfgNode) -> ToastCausalLM:
    """Installs TOAST (or TOAST-Lite) into ``base`` and sets the trainable tensors of ``cfg``.

    Trainable top-down tensors are held in fp32 on a bf16/fp16 base (``MODEL.TRAINABLE_DTYPE float32``,
    as ``peft`` holds LoRA), so that small updates are not rounded away; the frozen ones take the base's
    dtype. The forward computes in the base's dtype, casting the fp32 tensors as it reads them.
    """
    problems = _toast_cfg_problems(cfg)
    if problems:
        raise ValueError("bad language config: " + "; ".join(problems))
    toast_cfg = cfg.MODEL.TOAST
    top_down = TopDownModule(
        base.config.hidden_size, len(decoder_layers(base)), decoder_init="normal", recon_scale=toast_cfg.RECON_SCALE
    )
    if toast_cfg.DECODER_INIT == "zero_to_value":
        with torch.no_grad():  # B_i = 0: no signal reaches the values, so the model starts as the base
            for decoder in top_down.decoders:
                decoder.to_value.weight.zero_()
    if cfg.MODEL.TOPDOWN_WEIGHTS:
        state, source = read_top_down_weights(cfg.MODEL.TOPDOWN_WEIGHTS)
        load_top_down_state(top_down, state, source)
        logger.info("loaded the top-down path from %s", source)
    lite = cfg.MODEL.TRANSFER_TYPE == "toast-lite"
    if lite:
        top_down.add_low_rank(toast_cfg.LITE_RANK, toast_cfg.LITE_ALPHA)
    for p in base.parameters():
        p.requires_grad_(False)
    parts = set(trained_parts(cfg))
    trainable_dtype = torch.float32 if cfg.MODEL.TRAINABLE_DTYPE == "float32" else base.dtype
    for name, p in top_down.named_parameters():
        part = name.split(".")[-2] if name.startswith("decoders.") else name
        if lite and name.startswith("decoders."):
            trains = "lora_" in name and part in parts
        else:
            trains = part in parts and "lora_" not in name
        p.requires_grad_(trains)
        p.data = p.data.to(device=base.device, dtype=trainable_dtype if trains else base.dtype)
    return ToastCausalLM(base, top_down, recon_coef=toast_cfg.RECON_COEF)


def build_model(cfg: CfgNode) -> nn.Module:
    """The configured model: a :class:`ToastCausalLM`, a ``peft`` LoRA model, or the full model."""
    _check_cfg(cfg)
    base = load_base_model(cfg)
    transfer = cfg.MODEL.TRANSFER_TYPE
    if transfer in ("toast", "toast-lite"):
        model = attach_toast(base, cfg)
    elif transfer == "lora":
        from peft import LoraConfig, get_peft_model

        lora = cfg.MODEL.LORA
        model = get_peft_model(
            base,
            autocast_adapter_dtype=cfg.MODEL.TRAINABLE_DTYPE == "float32",  # peft's own fp32 adapters
            peft_config=LoraConfig(
                r=lora.RANK,
                lora_alpha=lora.ALPHA,
                lora_dropout=lora.DROPOUT,
                target_modules=list(lora.TARGETS),
                task_type="CAUSAL_LM",
            ),
        )
    else:
        model = base
        for p in model.parameters():
            p.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(
        "model %s | transfer %s | trainable %s / %s parameters (%.2f%%)",
        cfg.MODEL.NAME_OR_PATH,
        transfer,
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / total,
    )
    return model


def build_tokenizer(cfg: CfgNode):
    """The model's tokenizer; a missing pad token becomes the EOS token (no embedding resize)."""
    tokenizer = AutoTokenizer.from_pretrained(cfg.MODEL.NAME_OR_PATH, trust_remote_code=cfg.MODEL.TRUST_REMOTE_CODE)
    if tokenizer.pad_token is None:
        logger.info(
            "the tokenizer has no pad token; using its EOS token %r for padding (labels mask it)", tokenizer.eos_token
        )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
