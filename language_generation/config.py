"""Default configuration of the language sub-project (yacs), in the same style as the vision side.

Load it with :func:`load_config` (defaults ← YAML file and its ``_BASE_`` chain ← ``KEY VALUE`` pairs), the
loader both halves share (:mod:`runkit.config_files`).
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from pathlib import Path

from yacs.config import CfgNode as CN

from runkit import config_files
from runkit.cli import UserError
from runkit.ranges import Range, lookup, range_problems
from toast.registry import add_config_keys, choice_problems

from .methods import TRANSFER_METHODS

logger = logging.getLogger(__name__)

_C = CN()

# ---------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------
_C.OUTPUT_DIR = "./output/alpaca"  # the run folder: adapter, config.yaml, log.txt, metrics.jsonl, curves.png, results
_C.SEED = 42  # seeds torch, numpy and python (and the held-out split)

# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.NAME_OR_PATH = ""  # Hugging Face hub name or local folder of an AutoModelForCausalLM
_C.MODEL.TRANSFER_TYPE = "toast"  # a registered method (language_generation/methods/): toast, lora, end2end, ...
_C.MODEL.DTYPE = "float32"  # float32 | bfloat16 | float16: the dtype the base model is loaded in
_C.MODEL.TOPDOWN_WEIGHTS = ""  # top-down init: an adapter folder (e.g. a pretune run) or an original-release file
_C.MODEL.TRUST_REMOTE_CODE = False  # passed to from_pretrained; only for models you trust
_C.MODEL.ATTN_IMPLEMENTATION = ""  # "" = transformers' default (sdpa); eager | sdpa | flash_attention_2
# Precision of the tensors that train (TOAST's top-down tensors, LoRA's) on a bfloat16/float16 base:
# float32 (as peft): updates as small as lr 2e-5 are kept; LLaMA-7B TOAST (B_i and p) then holds 2.1 GB of fp32
# weights + 2.1 GB of gradients + 4.3 GB of AdamW state, against 1.1 + 1.1 + 2.1 GB in bf16 (language README).
# base: the base's dtype (less memory; most updates below half a bf16 step round away). For end2end, float32
# means fp32 master weights (the whole model) with TRAIN.BF16 / TRAIN.FP16 autocast; base means pure bf16 / fp16.
_C.MODEL.TRAINABLE_DTYPE = "float32"

# MODEL.<METHOD>.* (MODEL.TOAST, MODEL.LORA, ...): each transfer method's own keys, with their defaults, help
# and ranges, come from its registration (language_generation/methods/); get_cfg adds them.

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
_C.DATA = CN()
_C.DATA.PATH = ""  # a JSON/JSONL/.txt file, a folder of them, or a hub dataset name (train split)
_C.DATA.FORMAT = "alpaca"  # record layout: alpaca | sharegpt | text (raw documents for pre-tuning)
_C.DATA.TEMPLATE = ""  # alpaca | vicuna | chat (the tokenizer's chat template); "" = alpaca / vicuna by FORMAT
_C.DATA.MAX_LENGTH = 512  # tokens per example (alpaca, sharegpt)
_C.DATA.TOO_LONG = "truncate"  # truncate | drop | raise, for longer examples (the count is logged)
_C.DATA.BLOCK_SIZE = 512  # tokens per block for DATA.FORMAT text (the original pre-tuning used 512)
_C.DATA.EVAL_FRACTION = 0.02  # held-out share for eval loss / perplexity (seeded); 0 = none; below 1
_C.DATA.MAX_RECORDS = 0  # read at most this many records (0 = all); pre-tuning reads 200,000 (the original)
_C.DATA.NUM_PROC = 1  # processes for tokenising (datasets' map num_proc)
_C.DATA.CACHE_DIR = ""  # where the tokenised Arrow files go; "" = datasets' cache (~/.cache/huggingface/datasets)

# ---------------------------------------------------------------------------
# Generation (language_generation.generate)
# ---------------------------------------------------------------------------
_C.GENERATE = CN()
_C.GENERATE.MAX_NEW_TOKENS = 256  # tokens generated per prompt at most
_C.GENERATE.TEMPERATURE = 0.7  # 0 = greedy (the original sampled at 0.7, top-k 50, top-p 1.0)
_C.GENERATE.TOP_K = 50  # sampling: keep the k most likely tokens
_C.GENERATE.TOP_P = 1.0  # sampling: nucleus mass
_C.GENERATE.BATCH_SIZE = 1  # prompts per generate call (left padding); 1 streams tokens to the terminal
# a prompt that leaves fewer than MAX_NEW_TOKENS of the model's positions: raise (stop, naming it) | truncate
# (keep its last tokens, with a warning)
_C.GENERATE.TOO_LONG = "raise"
GENERATE_TOO_LONG = ("raise", "truncate")


def training_arguments_defaults() -> CN:
    """Every ``transformers.TrainingArguments`` field as ``TRAIN.<FIELD>`` (upper case), with its default."""
    import enum

    from transformers import TrainingArguments

    node = CN()
    for field in dataclasses.fields(TrainingArguments):
        if not field.init or field.name == "output_dir":
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        if isinstance(default, enum.Enum):
            default = default.value
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            default = None  # numbers: None means transformers' own default; 500 or 0.5 both pass yacs' check
        if isinstance(default, (str, int, float, bool, type(None), list, tuple)):
            node[field.name.upper()] = default
    return node


# ---------------------------------------------------------------------------
# Training (transformers.TrainingArguments)
# ---------------------------------------------------------------------------
# TrainingArguments, settable as TRAIN.<FIELD> (e.g. TRAIN.MAX_STEPS 100, TRAIN.LEARNING_RATE 2e-5); the
# output folder is OUTPUT_DIR. A numeric field left at None keeps transformers' default. A few defaults
# differ from transformers' to suit TOAST tuning:
_C.TRAIN = training_arguments_defaults()
_C.TRAIN.REMOVE_UNUSED_COLUMNS = False  # the dataset holds exactly input_ids and labels
_C.TRAIN.REPORT_TO = "none"  # no experiment tracker unless asked for
_C.TRAIN.SAVE_STRATEGY = "steps"
_C.TRAIN.SAVE_TOTAL_LIMIT = 2
_C.TRAIN.LOGGING_STEPS = 10.0
_C.TRAIN.EVAL_STRATEGY = "steps"  # eval loss every EVAL_STEPS (LOGGING_STEPS when unset) if there is a held-out split


# ---------------------------------------------------------------------------
# Value ranges (checked at load time, before anything loads); each method's own come from its registration
# ---------------------------------------------------------------------------
RANGES = (
    Range("GENERATE.TEMPERATURE", low=0.0, note="0 is greedy"),
    Range("GENERATE.TOP_P", low=0.0, high=1.0, low_open=True),
    Range("GENERATE.TOP_K", low=0, note="0 keeps every token"),
    Range("GENERATE.MAX_NEW_TOKENS", low=1),
    Range("GENERATE.BATCH_SIZE", low=1),
    Range("TRAIN.LEARNING_RATE", low=0.0, note="a negative rate climbs the loss"),
    Range("TRAIN.WEIGHT_DECAY", low=0.0),
    Range("TRAIN.WARMUP_STEPS", low=0.0, note="below 1: a fraction of the steps"),
    Range("TRAIN.MAX_GRAD_NORM", low=0.0, note="0: no clipping"),
    Range("TRAIN.NUM_TRAIN_EPOCHS", low=0.0),
    Range("TRAIN.ADAM_BETA1", low=0.0, high=1.0, high_open=True),
    Range("TRAIN.ADAM_BETA2", low=0.0, high=1.0, high_open=True),
    Range("TRAIN.ADAM_EPSILON", low=0.0),
    Range("TRAIN.LABEL_SMOOTHING_FACTOR", low=0.0, high=1.0, high_open=True),
    Range("TRAIN.NEFTUNE_NOISE_ALPHA", low=0.0),
    Range("TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", low=1),
    Range("TRAIN.PER_DEVICE_EVAL_BATCH_SIZE", low=1),
    Range("TRAIN.GRADIENT_ACCUMULATION_STEPS", low=1),
    Range("TRAIN.MAX_STEPS", low=1, also=(-1,), note="-1: train TRAIN.NUM_TRAIN_EPOCHS"),
    Range("TRAIN.SAVE_STEPS", low=0.0, low_open=True, note="below 1: a fraction of the steps"),
    Range("TRAIN.LOGGING_STEPS", low=0.0, low_open=True, note="below 1: a fraction of the steps"),
    Range("TRAIN.EVAL_STEPS", low=0.0, low_open=True, note="below 1: a fraction of the steps"),
)


def get_cfg() -> CN:
    """A fresh copy of the defaults, with every registered method's keys."""
    cfg = _C.clone()
    add_config_keys(cfg, TRANSFER_METHODS.config_keys())
    return cfg


def config_problems(cfg: CN) -> list[str]:
    """``KEY=value must be ...`` for every value out of its range (the general ones and the methods')."""
    problems = range_problems(cfg, (*RANGES, *TRANSFER_METHODS.ranges()))
    problems += choice_problems(cfg, TRANSFER_METHODS.config_keys())
    too_long = lookup(cfg, "GENERATE.TOO_LONG")
    if too_long is not None and too_long not in GENERATE_TOO_LONG:
        problems.append(f"GENERATE.TOO_LONG={too_long!r} must be one of {GENERATE_TOO_LONG}")
    return problems


def check_ranges(cfg: CN) -> None:
    problems = config_problems(cfg)
    if problems:
        raise ValueError("; ".join(problems))


def holds_fp32_master_weights(cfg: CN) -> bool:
    """A method that trains the whole model (full fine-tuning) on a bf16/fp16 base with
    ``MODEL.TRAINABLE_DTYPE float32``: every weight is held and updated in fp32 (mixed precision's master
    weights) while the ``Trainer``'s autocast (``TRAIN.BF16`` / ``TRAIN.FP16``) computes in half precision. Held
    in bf16, an AdamW step of 2e-5 on a 0.02-sized weight is below half a bf16 step and rounds away (the handicap
    of pure-bf16 full fine-tuning)."""
    return (
        TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE).whole_model
        and cfg.MODEL.DTYPE != "float32"
        and cfg.MODEL.TRAINABLE_DTYPE == "float32"
    )


def check_precision(cfg: CN) -> None:
    """Before training (not when a finished run is read back): fp32 master weights on a half-precision base
    compute in half precision only under the Trainer's autocast; without ``TRAIN.BF16`` / ``TRAIN.FP16`` the run
    would silently train in fp32 (twice the activation memory and time ``MODEL.DTYPE`` asks for)."""
    flag = {"bfloat16": "TRAIN.BF16", "float16": "TRAIN.FP16"}.get(cfg.MODEL.DTYPE)
    if flag is None or not holds_fp32_master_weights(cfg) or lookup(cfg, flag):
        return
    raise ValueError(
        f"MODEL.TRANSFER_TYPE {cfg.MODEL.TRANSFER_TYPE} on MODEL.DTYPE {cfg.MODEL.DTYPE} holds fp32 master weights "
        f"(MODEL.TRAINABLE_DTYPE float32) and computes in {cfg.MODEL.DTYPE} through the Trainer's autocast: set "
        f"{flag} True, or MODEL.TRAINABLE_DTYPE base to train every weight in {cfg.MODEL.DTYPE} itself"
    )


def _numeric_kind(annotation) -> type | None:
    """int or float for a TrainingArguments field typed as such (also ``float | None``); None otherwise."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    options = tuple(t for t in options if t is not type(None))
    if options == (int,):
        return int
    if float in options and all(t in (int, float, str) for t in options):
        return float
    return None


def training_argument_kinds() -> dict[str, type]:
    """``TRAIN.<FIELD>`` → int or float, for the numeric ``TrainingArguments`` fields (checked at load time)."""
    from transformers import TrainingArguments

    kinds = {}
    for field in dataclasses.fields(TrainingArguments):
        kind = _numeric_kind(field.type)
        if kind is not None:
            kinds[field.name.upper()] = kind
    return kinds


def check_training_numbers(cfg: CN) -> None:
    """Numeric ``TRAIN.*`` values have their field's type (yacs accepts anything for a None default, so
    ``TRAIN.MAX_STEPS ten`` would otherwise fail only after the model has loaded); ints become floats where
    the field is a float."""
    problems = []
    for key, kind in training_argument_kinds().items():
        value = cfg.TRAIN.get(key)
        if value is None:
            continue  # transformers' own default
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if kind is int and not is_int:
            problems.append(f"TRAIN.{key}={value!r} must be an integer")
        elif kind is float and not (is_int or isinstance(value, float)):
            problems.append(f"TRAIN.{key}={value!r} must be a number")
        elif kind is float and is_int:
            cfg.TRAIN[key] = float(value)
    if problems:
        raise ValueError("; ".join(problems))


def load_config(config_file: str | None, opts: list[str], freeze: bool = True, defaults: list[str] = ()) -> CN:
    """Defaults (and a CLI's own ``defaults`` pairs, e.g. pre-tuning's recipe) ← YAML file (and its
    ``_BASE_``) ← ``KEY VALUE`` pairs; unknown keys (also ``TRAIN.*``) and values of the wrong type are named."""
    cfg = get_cfg()
    config_files.merge_overrides(cfg, list(defaults))
    cfg = config_files.load_config(cfg, config_file, opts)
    check_training_numbers(cfg)
    check_ranges(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def run_config_text(cfg: CN) -> str:
    """A run's ``config.yaml``: every project key, and of ``TRAIN.*`` only the values that differ from
    transformers' defaults or from the project's (the ~110 others would tie the file to one transformers
    version: a field added or dropped by an upgrade would make the same run look like another one)."""
    library, project = training_arguments_defaults(), _C.TRAIN
    saved = cfg.clone()
    saved.defrost()
    saved.TRAIN = CN(
        {
            key: value
            for key, value in cfg.TRAIN.items()
            if key not in library or value != library[key] or value != project.get(key)
        }
    )
    return saved.dump()


def read_run_config(path: str | Path) -> CN:
    """A run's ``config.yaml``, written by this or another transformers version: ``TRAIN.*`` fields this
    version's ``TrainingArguments`` lacks are left out with a warning that names them, fields the file lacks
    keep their defaults; any other unknown key is an error naming the file."""
    path = Path(path)
    content = config_files.read_yaml(path)
    train = content.get("TRAIN") or {}
    known = _C.TRAIN
    unknown = sorted(key for key in train if key not in known)
    if unknown:
        logger.warning(
            "%s: TRAIN.%s: not fields of this transformers' TrainingArguments (another version wrote the run); "
            "left out",
            path,
            ", TRAIN.".join(unknown),
        )
        content["TRAIN"] = {key: value for key, value in train.items() if key in known}
    cfg = get_cfg()
    config_files.merge_mapping(cfg, content, str(path))
    check_training_numbers(cfg)
    return cfg


# Settings that run code or reach the network when a model loads: they come from the current call (its command line
# and --config-file) only, never from a folder being read (a run folder someone sent): such a folder that asks for
# one is refused, naming the key and how to allow it. Each: (whether a value asks for it, what it would do).
CALLER_ONLY = {
    "MODEL.TRUST_REMOTE_CODE": (bool, "runs Python code that comes with the model's files"),
    "MODEL.ATTN_IMPLEMENTATION": (
        lambda value: "/" in str(value),
        "downloads and runs an attention kernel from the hub",
    ),
}


def keep_caller_only_settings(cfg: CN, call: CN, where: str) -> None:
    """Sets each :data:`CALLER_ONLY` key of ``cfg`` (read from ``where``, then the call's overrides merged) to the
    call's own value (``call``: the defaults with only the call's overrides); refuses a value ``where`` asks for
    that the call does not give."""
    for key, (asks, does) in CALLER_ONLY.items():
        section, name = key.split(".")
        theirs, ours = cfg[section][name], call[section][name]
        if asks(theirs) and theirs != ours:
            raise UserError(
                f"{where} sets {key} {theirs!r}, which {does}; a folder being read never turns that on: if you "
                f"trust it, pass {key} {theirs} on the command line"
            )
        cfg[section][name] = ours


def check_model_name(cfg: CN) -> None:
    """Training needs ``MODEL.NAME_OR_PATH`` (generate can take it from the run instead): say so before the
    hub is asked about an empty name."""
    if not cfg.MODEL.NAME_OR_PATH.strip():
        raise ValueError("MODEL.NAME_OR_PATH is empty: give a Hugging Face hub name or a local model folder")
