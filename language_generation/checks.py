"""Checks that keep a language run honest where it cannot be read from the config alone: value ranges, the
content of the inputs a run was trained on (base model, data, pre-tuned top-down weights), non-finite
training, and what ``generate`` can be given (an ``--output`` it can write, prompts that fit the model's
positions). Each stops with the key, file, step or prompt it is about. The README's "Reliability" section
says what is checked and when.

Content is compared through :mod:`runkit.fingerprint` (a hash per file, memoised by path, size, mtime, ctime
and inode), so a 14 GB base model is hashed once, and a file rewritten behind the same path is still caught.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import TrainerCallback
from yacs.config import CfgNode

from runkit.files import atomic_write_text, read_json_record
from runkit.fingerprint import changed_files, file_fingerprint

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------
# Value ranges (at load time, before anything loads)
# ---------------------------------------------------------------------------------------------------

GENERATE_TOO_LONG = ("raise", "truncate")
_RANGES: tuple[tuple[str, Callable[[float], bool], str], ...] = (
    ("GENERATE.TEMPERATURE", lambda v: v >= 0, ">= 0 (0 is greedy)"),
    ("GENERATE.TOP_P", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("GENERATE.TOP_K", lambda v: v >= 0, ">= 0 (0 keeps every token)"),
    ("GENERATE.MAX_NEW_TOKENS", lambda v: v >= 1, ">= 1"),
    ("GENERATE.BATCH_SIZE", lambda v: v >= 1, ">= 1"),
    ("MODEL.TOAST.RECON_COEF", lambda v: v >= 0, ">= 0"),
    ("MODEL.TOAST.RECON_SCALE", lambda v: v > 0, "> 0"),
    ("MODEL.TOAST.LITE_RANK", lambda v: v >= 1, ">= 1"),
    ("MODEL.TOAST.LITE_ALPHA", lambda v: v > 0, "> 0 (the update is scaled by alpha / rank)"),
    ("MODEL.LORA.RANK", lambda v: v >= 1, ">= 1"),
    ("MODEL.LORA.ALPHA", lambda v: v > 0, "> 0 (the update is scaled by alpha / rank)"),
    ("MODEL.LORA.DROPOUT", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("TRAIN.LEARNING_RATE", lambda v: v >= 0, ">= 0 (a negative rate climbs the loss)"),
    ("TRAIN.WEIGHT_DECAY", lambda v: v >= 0, ">= 0"),
    ("TRAIN.WARMUP_STEPS", lambda v: v >= 0, ">= 0 (below 1: a fraction of the steps)"),
    ("TRAIN.MAX_GRAD_NORM", lambda v: v >= 0, ">= 0 (0: no clipping)"),
    ("TRAIN.NUM_TRAIN_EPOCHS", lambda v: v >= 0, ">= 0"),
    ("TRAIN.ADAM_BETA1", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("TRAIN.ADAM_BETA2", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("TRAIN.ADAM_EPSILON", lambda v: v >= 0, ">= 0"),
    ("TRAIN.LABEL_SMOOTHING_FACTOR", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("TRAIN.NEFTUNE_NOISE_ALPHA", lambda v: v >= 0, ">= 0"),
    ("TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", lambda v: v >= 1, ">= 1"),
    ("TRAIN.PER_DEVICE_EVAL_BATCH_SIZE", lambda v: v >= 1, ">= 1"),
    ("TRAIN.GRADIENT_ACCUMULATION_STEPS", lambda v: v >= 1, ">= 1"),
    ("TRAIN.MAX_STEPS", lambda v: v == -1 or v >= 1, ">= 1, or -1 (train TRAIN.NUM_TRAIN_EPOCHS)"),
    ("TRAIN.SAVE_STEPS", lambda v: v > 0, "> 0 (below 1: a fraction of the steps)"),
    ("TRAIN.LOGGING_STEPS", lambda v: v > 0, "> 0 (below 1: a fraction of the steps)"),
    ("TRAIN.EVAL_STEPS", lambda v: v > 0, "> 0 (below 1: a fraction of the steps)"),
)


def _lookup(cfg: CfgNode, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def range_problems(cfg: CfgNode) -> list[str]:
    """``KEY=value must be ...`` for every numeric value out of its range (or not finite); None (transformers'
    own default) and non-numbers (named by the type checks) are left alone."""
    problems = []
    for key, ok, expected in _RANGES:
        value = _lookup(cfg, key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if not (math.isfinite(value) and ok(value)):
            problems.append(f"{key}={value!r} must be {expected}")
    too_long = _lookup(cfg, "GENERATE.TOO_LONG")
    if too_long is not None and too_long not in GENERATE_TOO_LONG:
        problems.append(f"GENERATE.TOO_LONG={too_long!r} must be one of {GENERATE_TOO_LONG}")
    return problems


def check_precision(cfg: CfgNode) -> None:
    """Before training (not when a finished run is read back): full fine-tuning with fp32 master weights on a
    half-precision base computes in half precision only under the Trainer's autocast; without ``TRAIN.BF16`` /
    ``TRAIN.FP16`` it would silently train in fp32 (twice the activation memory and time ``MODEL.DTYPE`` asks for)."""
    from .model import holds_fp32_master_weights

    flag = {"bfloat16": "TRAIN.BF16", "float16": "TRAIN.FP16"}.get(cfg.MODEL.DTYPE)
    if flag is None or not holds_fp32_master_weights(cfg) or _lookup(cfg, flag):
        return
    raise ValueError(
        f"MODEL.TRANSFER_TYPE {cfg.MODEL.TRANSFER_TYPE} on MODEL.DTYPE {cfg.MODEL.DTYPE} holds fp32 master weights "
        f"(MODEL.TRAINABLE_DTYPE float32) and computes in {cfg.MODEL.DTYPE} through the Trainer's autocast: set "
        f"{flag} True, or MODEL.TRAINABLE_DTYPE base to train every weight in {cfg.MODEL.DTYPE} itself"
    )


def check_ranges(cfg: CfgNode) -> None:
    problems = range_problems(cfg)
    if problems:
        raise ValueError("; ".join(problems))


# ---------------------------------------------------------------------------------------------------
# The inputs a run was trained on, by content
# ---------------------------------------------------------------------------------------------------

INPUTS = "inputs.json"  # in OUTPUT_DIR: the content hashes of the base model, data and top-down weights
# the files of a model folder that from_pretrained (model and tokenizer) reads; not READMEs or other formats
MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".tiktoken", ".py")
TOP_DOWN_FILES = ("adapter.safetensors", "adapter_config.json")  # what an adapter folder is read from


class InputsChanged(ValueError):
    """A run's base model, data or top-down weights differ by content from what it was trained on."""


def _hashes(files: list[Path], root: Path | None) -> dict[str, str]:
    """``{name: content hash}``, names relative to ``root`` (so that a moved or copied folder compares equal)."""
    return {str(f.relative_to(root)) if root else f.name: file_fingerprint(f) for f in files}


def model_files(name_or_path: str) -> tuple[Path | None, list[Path]]:
    """The model folder and the files of it that loading reads: a local folder, or the hub cache's snapshot of
    a hub name (no download; ``(None, [])`` when it is not cached)."""
    folder = Path(name_or_path)
    if not folder.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name_or_path, "config.json")
        except Exception:  # noqa: BLE001  (not a valid hub name either: nothing to fingerprint)
            cached = None
        if not isinstance(cached, str):
            return None, []
        folder = Path(cached).parent
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix in MODEL_SUFFIXES
    )
    return folder, files


def model_fingerprint(name_or_path: str) -> dict:
    """``{"source": MODEL.NAME_OR_PATH, "files": {name: hash}}`` (empty files: a hub model not yet cached)."""
    folder, files = model_files(name_or_path)
    return {"source": name_or_path, "files": _hashes(files, folder)}


def data_fingerprint(path_text: str) -> dict:
    """``{"source": DATA.PATH, "files": {name: hash}}``; a hub dataset has no files to hash."""
    from .records import data_files

    files = data_files(path_text)
    root = Path(path_text) if Path(path_text).is_dir() else None
    return {"source": path_text, "files": _hashes(files, root)}


def top_down_fingerprint(path_text: str) -> dict:
    path = Path(path_text)
    files = [path / name for name in TOP_DOWN_FILES if (path / name).is_file()] if path.is_dir() else [path]
    return {"source": path_text, "files": _hashes(files, path if path.is_dir() else None)}


def run_inputs(cfg: CfgNode) -> dict:
    """What a run reads, by content: the base model, the data and (when given) the pre-tuned top-down path."""
    inputs = {"base_model": model_fingerprint(cfg.MODEL.NAME_OR_PATH), "data": data_fingerprint(cfg.DATA.PATH)}
    if cfg.MODEL.TOPDOWN_WEIGHTS:
        inputs["topdown_weights"] = top_down_fingerprint(cfg.MODEL.TOPDOWN_WEIGHTS)
    return inputs


def read_inputs(folder: Path) -> dict | None:
    return read_json_record(Path(folder) / INPUTS)


def record_inputs(out: Path, cfg: CfgNode) -> dict:
    """Writes ``inputs.json`` (a new run, before training) and returns it."""
    inputs = run_inputs(cfg)
    atomic_write_text(Path(out) / INPUTS, json.dumps(inputs, indent=2, sort_keys=True) + "\n")
    return inputs


_LABELS = {"base_model": "MODEL.NAME_OR_PATH", "data": "DATA.PATH", "topdown_weights": "MODEL.TOPDOWN_WEIGHTS"}


def input_changes(recorded: dict, current: dict, parts=tuple(_LABELS)) -> list[str]:
    """What differs, one phrase per file (``DATA.PATH data.json: changed``); parts whose files could not be
    listed on either side (a hub name) are compared by name only."""
    changes = []
    for part in parts:
        old, new = recorded.get(part), current.get(part)
        if old is None and new is None:
            continue
        if old is None or new is None:
            changes.append(f"{_LABELS[part]}: {'added' if old is None else 'removed'}")
            continue
        if not old["files"] or not new["files"]:
            if old["source"] != new["source"]:
                changes.append(f"{_LABELS[part]}: {old['source']!r} became {new['source']!r}")
            continue
        for name in changed_files(old["files"], new["files"]):
            state = "new" if name not in old["files"] else "gone" if name not in new["files"] else "changed"
            changes.append(f"{_LABELS[part]} {new['source']}: {name} {state}")
    return changes


def check_run_inputs(out: Path, cfg: CfgNode) -> None:
    """Refuses to resume (or to report as finished) a run whose inputs changed by content since it started;
    a run made before inputs were recorded is let through with a warning."""
    recorded = read_inputs(out)
    if recorded is None:
        logger.warning("%s has no %s (made before inputs were recorded): its inputs cannot be checked", out, INPUTS)
        return
    changes = input_changes(recorded, run_inputs(cfg))
    if changes:
        raise InputsChanged(
            f"OUTPUT_DIR {out} was trained on other inputs than the ones the config names now ("
            + "; ".join(changes)
            + f"; recorded in {Path(out) / INPUTS}). Restore them, choose another OUTPUT_DIR, or pass --overwrite "
            "to train again from scratch"
        )


def check_adapter_base(run_dir: Path, cfg: CfgNode) -> bool:
    """True when ``MODEL.NAME_OR_PATH`` holds, by content, the base model the run in ``run_dir`` was trained on
    (whatever its path); raises naming the files that differ. False when it cannot tell (a run made before
    inputs were recorded, or a hub model not in the cache): the adapter's own check of the model's name applies."""
    recorded = read_inputs(run_dir)
    if recorded is None:
        logger.warning("%s has no %s: the base model is checked by name only", run_dir, INPUTS)
        return False
    current = {"base_model": model_fingerprint(cfg.MODEL.NAME_OR_PATH)}
    if not recorded["base_model"]["files"] or not current["base_model"]["files"]:
        logger.warning("the base model %r cannot be read from disk: checked by name only", cfg.MODEL.NAME_OR_PATH)
        return False
    changes = input_changes(recorded, current, parts=("base_model",))
    if changes:
        raise InputsChanged(
            f"--adapter {run_dir} was trained on the base model {recorded['base_model']['source']!r}; "
            + "; ".join(changes)
            + " (by content, against "
            + f"{Path(run_dir) / INPUTS}). Give the base model it was trained on (MODEL.NAME_OR_PATH)"
        )
    return True


# ---------------------------------------------------------------------------------------------------
# Non-finite training
# ---------------------------------------------------------------------------------------------------


class NonFiniteTrainingError(FloatingPointError):
    """The loss, a gradient or a trainable weight went NaN or infinite; the run stops at that step."""


def _stop_message(out: str, step: int, what: str) -> str:
    from .run_files import checkpoint_dirs

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


# ---------------------------------------------------------------------------------------------------
# generate: the output path and the prompts' length
# ---------------------------------------------------------------------------------------------------


def model_positions(config) -> int | None:
    """The number of positions a model config allows, or None when it names none."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def longest_token_bytes(tokenizer) -> int:
    """The UTF-8 length of the longest vocabulary entry: a text of B bytes takes at least B / this many tokens
    (an overestimate for byte-level and byte-fallback vocabularies, which only loosens the bound)."""
    return max(len(token.encode("utf-8")) for token in tokenizer.get_vocab())


def fit_prompts(
    texts: list[str],
    tokenizer,
    positions: int | None,
    max_new_tokens: int,
    policy: str,
    add_special_tokens: bool,
    labels: list[str] | None = None,
) -> tuple[list[str], int | None]:
    """The prompts, checked to leave ``max_new_tokens`` of the model's ``positions``: a longer one stops the
    run, naming it (``policy`` raise), or keeps its last tokens with a warning (truncate); returns the texts
    (a huge one cut to a bounded tail before it is tokenised) and the token limit to truncate to (None: no
    truncation needed). Memory stays bounded: a prompt whose byte length alone rules it out is never tokenised.
    ``labels``: how to name each prompt (its instruction; the rendered text by default)."""
    if positions is None:
        logger.warning("the model config names no position limit: prompt lengths are not checked")
        return texts, None
    limit = positions - max_new_tokens
    if limit < 1:
        raise ValueError(
            f"GENERATE.MAX_NEW_TOKENS={max_new_tokens} leaves no room for a prompt in the model's {positions} positions"
        )
    widest = limit * longest_token_bytes(tokenizer)  # bytes that cannot fit in `limit` tokens
    out, problems, truncated = [], [], False
    for index, text in enumerate(texts):
        head = (labels[index] if labels else text)[:60].replace("\n", " ")
        if len(text) > widest or len(text.encode("utf-8")) > widest:
            size = f"{len(text.encode('utf-8'))} bytes (more than {limit} tokens can hold)"
            text = text[-widest:] if policy == "truncate" else text
        else:
            n = len(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
            size = f"{n} tokens" if n > limit else ""
        if size:
            if policy != "truncate":
                problems.append(f"prompt {index} ({head!r}...) is {size}")
                continue
            logger.warning(
                "prompt %d (%r...) is %s: keeping its last %d tokens (GENERATE.TOO_LONG truncate)",
                index,
                head,
                size,
                limit,
            )
            truncated = True
        out.append(text)
    if problems:
        raise ValueError(
            "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            + f": a prompt may have {limit} tokens (the model's {positions} positions less "
            f"GENERATE.MAX_NEW_TOKENS={max_new_tokens}); shorten it, lower GENERATE.MAX_NEW_TOKENS, or set "
            "GENERATE.TOO_LONG truncate to keep each prompt's last tokens"
        )
    return out, (limit if truncated else None)
