"""Default configuration of the vision sub-project (yacs), in the style of detectron2 and VPT.

Key names follow the original TOAST/VPT code where they exist (``MODEL.TRANSFER_TYPE``,
``MODEL.MODEL_ROOT``, ``DATA.NAME``, ``SOLVER.BASE_LR``, ...), so its command lines keep working.
"""

from __future__ import annotations

from yacs.config import CfgNode as CN

from runkit import config_files
from runkit.ranges import Range, lookup, range_problems
from toast.registry import add_config_keys, choice_problems

from .models.transfer import TRANSFER_METHODS
from .models.transfer.registry import CACHE_KINDS, PRE_LOGITS, CacheKind

_C = CN()
NORMALIZE_CHOICES = ("backbone", "imagenet", "inception")  # DATA.NORMALIZE

# ---------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------
_C.OUTPUT_DIR = "./output"  # where runs write logs, metrics and checkpoints
_C.SEED = 0  # seeds torch, numpy and python; a seeded run on the CPU is reproducible, resumed or not
_C.RUN_N_TIMES = 1  # kept for the original's command lines: number of run{k} folders allowed per setting
_C.CUDNN_BENCHMARK = False  # torch.backends.cudnn.benchmark
_C.NUM_GPUS = 1  # kept for the original's command lines; the world size comes from torchrun
_C.DEVICE = "auto"  # auto (cuda when available) | cuda | cpu
_C.AMP = True  # bf16 autocast on CUDA (ignored on the CPU)
_C.SAVE_LAST = True  # keep a `last` checkpoint each epoch so that a killed run resumes

# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.BACKBONE = "vit_base_patch16_224"  # any timm ViT-family model name with a fused attn.qkv
_C.MODEL.PRETRAINED = False  # load timm's hub weights for BACKBONE (needs network the first time)
_C.MODEL.MODEL_ROOT = (
    ""  # local weights file (.pth/.pt/.bin/.safetensors/.npz; original TOAST release files too); wins over PRETRAINED
)
_C.MODEL.TOPDOWN_WEIGHTS = (
    ""  # optional: top-down weights (adapter folder or original-format file) applied after MODEL_ROOT
)
# optional: another run's adapter folder (RUN/best) of the same transfer type, backbone and weights; every tensor
# it adapted except the head starts from there (sequential transfer: source task, then this task)
_C.MODEL.INIT_FROM = ""
_C.MODEL.TRANSFER_TYPE = "toast"  # a registered transfer method: linear | end2end | prompt | lora | bias | toast | ...
_C.MODEL.TYPE = ""  # original's key, accepted for its command lines: vit_top_down | vit_bottom_up | vit ("" = any)
_C.MODEL.SIZE = ""  # original's key: base | large picks vit_{base,large}_patch16_224 when BACKBONE is left at default
_C.MODEL.DROP_PATH_RATE = 0.1  # stochastic depth, linear 0 -> rate over the blocks (active in both TOAST passes)
_C.MODEL.MLP_NUM = 0  # hidden layers in the task head (0 = a single Linear, as in the original)
# trunc_normal (std 0.01, zero bias: near-uniform first logits for any class count) | original (kaiming fan_out,
# bias -4.6, as the paper's code: logits of std ~10 with few classes; configs/vtab and configs/fgvc pin it)
_C.MODEL.HEAD_INIT = "trunc_normal"
_C.MODEL.HEAD_DROPOUT = 0.1  # dropout after each hidden head layer (original: 0.1); unused when MLP_NUM = 0

# MODEL.TOAST, MODEL.PROMPT, MODEL.LORA, ...: each transfer method's own keys, from its registration (get_cfg)

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
_C.DATA = CN()
_C.DATA.NAME = ""  # dataset / task name
_C.DATA.DATAPATH = ""  # dataset root
_C.DATA.NUMBER_CLASSES = -1  # task head size; -1 = the registry's count (VTAB/FGVC) or the class folders
_C.DATA.FORMAT = "auto"  # auto | vtab (split .txt files) | fgvc (split .json maps) | imagefolder (train/ val/ test/)
_C.DATA.TRAIN_SPLIT = ""  # "" = the layout's default: train800val200 (VTAB), train (FGVC, ImageFolder)
_C.DATA.VAL_SPLIT = ""  # "" = val200 (VTAB) or val; "none" = no validation (the last epoch is kept)
_C.DATA.TEST_SPLIT = ""  # "" = test; "none" = no test evaluation (tuning runs)
_C.DATA.CROPSIZE = (
    224  # input resolution; position embeddings are resampled to it; a ViT needs a multiple of its patch
)
_C.DATA.VAL_FRACTION = 0.1  # ImageFolder without val/: this share of train/ (per class, seeded by SEED) validates
_C.DATA.NORMALIZE = "backbone"  # backbone (timm pretrained_cfg mean/std) | imagenet (the original's) | inception (0.5)
_C.DATA.ALLOW_SPLIT_OVERLAP = False  # True: run although val/test repeat over 5 % of the training images by content
_C.DATA.VERIFY_IMAGES = True  # open every image of every split before training (in parallel) and list bad ones
_C.DATA.AUGMENT = True  # False: train with the evaluation transform (no random crop/flip), e.g. a cached linear probe
_C.DATA.CACHE_IMAGES = False  # decode deterministic splits once into memory (uint8), for small tasks
_C.DATA.BATCH_SIZE = 32  # global batch size (split evenly over torchrun processes)
_C.DATA.NUM_WORKERS = -1  # data-loader workers per process; -1 = the CPUs this process may use, at most 4

# ---------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------
_C.SOLVER = CN()
# Defaults for your own data: AdamW, 1e-4 for what the method adapts, 1e-2 for the head (measured in the README's
# "your own images"); the paper's recipes (SGD, their lrs, head lr = BASE_LR) are pinned in configs/vtab, configs/fgvc.
# auto: on your own ImageFolder, the method's own-data recipe when its registration has one (linear: the converged
# L-BFGS probe on cached features, no augmentation, SOLVER.PROBE_DECAYS chosen on val); adamw otherwise.
_C.SOLVER.OPTIMIZER = "auto"  # auto | adamw | sgd (momentum) | lbfgs (linear probe on cached features: full batch)
_C.SOLVER.PROBE_DECAYS = []  # lbfgs: L2 strengths tried on val before training (the best replaces WEIGHT_DECAY); [] = none
_C.SOLVER.BASE_LR = 1e-4  # learning rate of everything but the head (used as given: no batch scaling here)
_C.SOLVER.HEAD_LR_MULT = 100.0  # the task head's lr = BASE_LR × this (1e-2 here; 1.0 in the paper's configs)
_C.SOLVER.WEIGHT_DECAY = 1e-4  # weight decay; never on biases, norms and other 1-D tensors
_C.SOLVER.PRIOR_DECAY = True  # apply weight decay to the TOAST prompt p too (the original's default)
_C.SOLVER.MOMENTUM = 0.9  # SGD momentum
_C.SOLVER.WARMUP_EPOCH = 1.0  # linear warm-up epochs (fractional allowed; the paper's configs use 10)
_C.SOLVER.TOTAL_EPOCH = 30  # training epochs
_C.SOLVER.LR_STEP = "iter"  # iter: warm-up + cosine per iteration | epoch: per epoch, lr 0 in epoch 0 (the original)
_C.SOLVER.GRAD_CLIP = 0.0  # max gradient norm; 0 = no clipping
_C.SOLVER.LOG_EVERY_N = 50  # log the running loss every N iterations

# ---------------------------------------------------------------------------
# Protocol and caches
# ---------------------------------------------------------------------------
_C.SOLVER.TEST_PERIOD = 0  # 0: test once at the end (last epoch, and the best-val adapter); k > 0: also every k epochs
_C.SOLVER.EVAL_PERIOD = 1  # validate every k epochs (and at the last); the best epoch is chosen among these
# DATA.CACHE_FEATURES, MODEL.TOAST.CACHE_FIRST_PASS: each cache's key comes with the methods that can use it
_C.DATA.CACHE_DIR = (
    ""  # "" = caches live in memory (shared by the runs of one process); a folder = memory-mapped files
)
_C.DATA.CACHE_DTYPE = "float32"  # float32 | float16 | bfloat16: storage of cached tokens/features (float32: exact)
CACHE_DTYPES = ("float16", "bfloat16", "float32")


def check_protocol_keys(cfg: CN) -> None:
    """Values of the protocol and cache keys, checked with the config (before torch is imported)."""
    if cfg.DATA.CACHE_DTYPE not in CACHE_DTYPES:
        raise ValueError(f"DATA.CACHE_DTYPE must be one of {list(CACHE_DTYPES)}, got {cfg.DATA.CACHE_DTYPE!r}")
    method = TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE)
    asked = cache_asked(cfg)
    if len(asked) > 1:
        raise ValueError(f"set {' or '.join(kind.config_key for kind in asked)}, not both")
    if asked and method.cache != asked[0]:
        kind = asked[0]
        able = sorted(m.name for m in TRANSFER_METHODS.values() if m.cache == kind)
        raise ValueError(
            f"{kind.config_key} is for {' and '.join(able)} (it caches {kind.what}); "
            f"MODEL.TRANSFER_TYPE is {cfg.MODEL.TRANSFER_TYPE!r}"
        )
    if cfg.SOLVER.OPTIMIZER == "lbfgs" and asked != [PRE_LOGITS]:
        raise ValueError(
            "SOLVER.OPTIMIZER lbfgs solves the linear probe in full batch on cached features: it needs a method "
            f"whose cache is {PRE_LOGITS.name} and {PRE_LOGITS.config_key} True "
            f"(got {cfg.MODEL.TRANSFER_TYPE!r}, {lookup(cfg, PRE_LOGITS.config_key)})"
        )


def cache_asked(cfg: CN) -> list[CacheKind]:
    """The caches the config turns on (a method's key that is absent turns nothing on)."""
    return [kind for kind in CACHE_KINDS if lookup(cfg, kind.config_key)]


# ---------------------------------------------------------------------------


def get_cfg() -> CN:
    """A fresh copy of the defaults, with every registered method's keys, to merge a YAML file and ``KEY VALUE``
    overrides into."""
    cfg = _C.clone()
    add_config_keys(cfg, TRANSFER_METHODS.config_keys())
    return cfg


def flat(node: CN, prefix: str = "") -> dict:
    """``{"SECTION.KEY": value}`` for every leaf key."""
    out = {}
    for key, value in node.items():
        if isinstance(value, CN):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_keys(cfg: CN) -> dict:
    """``{KEY: value}`` for every key that differs from the defaults (what a config file and overrides set)."""
    defaults = flat(get_cfg())
    return {key: value for key, value in flat(cfg).items() if defaults.get(key, object()) != value}


# Values outside these train wrongly without an error (a negative head lr ascends the loss, a negative decay grows
# the weights) or fail only mid-training (stochastic depth of 2.0); each method adds the ranges of its own keys.
RANGES = (
    Range("SOLVER.BASE_LR", low=0.0),
    Range("SOLVER.HEAD_LR_MULT", low=0.0),
    Range("SOLVER.WEIGHT_DECAY", low=0.0),
    Range("SOLVER.WARMUP_EPOCH", low=0.0),
    Range("SOLVER.MOMENTUM", low=0.0, high=1.0, high_open=True),
    Range("SOLVER.GRAD_CLIP", low=0.0),
    Range("SOLVER.LOG_EVERY_N", low=1),
    Range("SOLVER.TOTAL_EPOCH", low=1),
    Range("SOLVER.TEST_PERIOD", low=0, note="0 = test after the last epoch only"),
    Range("SOLVER.EVAL_PERIOD", low=1),
    Range("DATA.BATCH_SIZE", low=1),
    Range("DATA.CROPSIZE", low=1),
    Range("DATA.NUM_WORKERS", low=0, also=(-1,), note="-1 = the machine's CPUs"),
    Range("DATA.VAL_FRACTION", low=0.0, high=1.0, high_open=True),
    Range("MODEL.DROP_PATH_RATE", low=0.0, high=1.0, high_open=True),
    Range("MODEL.HEAD_DROPOUT", low=0.0, high=1.0, high_open=True),
    Range("MODEL.MLP_NUM", low=0),
)


def check_config(cfg: CN) -> None:
    """Value checks yacs' type checks cannot make; each problem names the key and what is allowed."""
    problems = range_problems(cfg, [*RANGES, *TRANSFER_METHODS.ranges()])
    problems += choice_problems(cfg, TRANSFER_METHODS.config_keys())
    if cfg.DATA.NORMALIZE not in NORMALIZE_CHOICES:
        problems.append(f"DATA.NORMALIZE must be one of {list(NORMALIZE_CHOICES)}, got {cfg.DATA.NORMALIZE!r}")
    if problems:
        raise ValueError("; ".join(problems))


def load_config(config_file: str | None, opts: list[str]) -> CN:
    """Defaults ← YAML file (and its ``_BASE_``) ← ``KEY VALUE`` pairs, through the loader both halves share."""
    cfg = config_files.load_config(get_cfg(), config_file, opts)
    if cfg.SEED is None:
        raise ValueError("SEED must be an integer (runs are seeded so that they can be resumed exactly)")
    check_config(cfg)  # values: epochs, batch size, fractions, choices
    check_protocol_keys(cfg)
    cfg.freeze()
    return cfg
