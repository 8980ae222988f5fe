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
_C.MODEL.TRANSFER_TYPE = "toast"  # toast | toast-lite | lora | ia3 | end2end (alias: full); see transfer.py
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

_C.MODEL.TOAST = CN()
# What trains: any of to_value (B_i), down (A_i), prompt (p), transform (T); toast-lite trains the low-rank
# updates of the decoder parts named. ["auto"]: toast with MODEL.TOPDOWN_WEIGHTS trains B_i and p (the original's
# recipe for a pre-tuned path); toast without them trains A_i, B_i and p (a fresh frozen A_i learns nothing);
# toast-lite trains the updates of A_i and B_i, and p (the original's). The run log says which set and why.
_C.MODEL.TOAST.TRAIN = ["auto"]
# normal: A_i, B_i ~ N(0, 0.02) (the original LLaMA); trunc_normal: the same truncated (the vision default);
# zero_to_value: B_i = 0, so the model starts exactly as the base (A_i normal, p as before). The choices are
# toast.topdown.DECODER_INITS, the vision half's. Weights from MODEL.TOPDOWN_WEIGHTS replace any of them.
_C.MODEL.TOAST.DECODER_INIT = "normal"
_C.MODEL.TOAST.RECON_COEF = 0.0  # reconstruction-loss weight: 0 in tuning (original), 1.0 in pre-tuning
_C.MODEL.TOAST.RECON_SCALE = 10.0  # both operands divided by this (the original LLaMA's /10)
_C.MODEL.TOAST.LITE_RANK = 4  # toast-lite: rank of the update on every A_i and B_i
_C.MODEL.TOAST.LITE_ALPHA = 1.0  # toast-lite: update scale = alpha / rank (loralib's alpha 1)

_C.MODEL.LORA = CN()
_C.MODEL.LORA.RANK = 4  # the original's LoRA baseline: rank 4 on q/k/v/o
_C.MODEL.LORA.ALPHA = 1.0  # scale alpha / rank
_C.MODEL.LORA.DROPOUT = 0.0  # dropout on the LoRA input
_C.MODEL.LORA.TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]  # module-name suffixes (peft target_modules)

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
_C.register_renamed_key(
    "GENERATE.CHAT_TEMPLATE", "DATA.TEMPLATE", "GENERATE.CHAT_TEMPLATE True is now DATA.TEMPLATE chat"
)


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


def get_cfg() -> CN:
    """A fresh copy of the defaults."""
    return _C.clone()


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
    from .checks import check_ranges  # (torch and transformers load there; this module stays light)

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


def check_model_name(cfg: CN) -> None:
    """Training needs ``MODEL.NAME_OR_PATH`` (generate can take it from the run instead): say so before the
    hub is asked about an empty name."""
    if not cfg.MODEL.NAME_OR_PATH.strip():
        raise ValueError("MODEL.NAME_OR_PATH is empty: give a Hugging Face hub name or a local model folder")
