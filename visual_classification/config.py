"""Default configuration of the vision sub-project (yacs), in the style of detectron2 and VPT.

Key names follow the original TOAST/VPT code where they exist (``MODEL.TRANSFER_TYPE``,
``MODEL.MODEL_ROOT``, ``DATA.NAME``, ``SOLVER.BASE_LR``, ...), so its command lines keep working.
"""

from __future__ import annotations

from yacs.config import CfgNode as CN

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
_C.MODEL.TRANSFER_TYPE = "toast"  # linear | end2end | prompt | lora | bias | toast | toast-lite
_C.MODEL.TYPE = ""  # original's key, accepted for its command lines: vit_top_down | vit_bottom_up | vit ("" = any)
_C.MODEL.SIZE = ""  # original's key: base | large picks vit_{base,large}_patch16_224 when BACKBONE is left at default
_C.MODEL.DROP_PATH_RATE = 0.1  # stochastic depth, linear 0 -> rate over the blocks (active in both TOAST passes)
_C.MODEL.MLP_NUM = 0  # hidden layers in the task head (0 = a single Linear, as in the original)
# trunc_normal (std 0.01, zero bias: near-uniform first logits for any class count) | original (kaiming fan_out,
# bias -4.6, as the paper's code: logits of std ~10 with few classes; configs/vtab and configs/fgvc pin it)
_C.MODEL.HEAD_INIT = "trunc_normal"
_C.MODEL.HEAD_DROPOUT = 0.1  # dropout after each hidden head layer (original: 0.1); unused when MLP_NUM = 0

_C.MODEL.TOAST = CN()
_C.MODEL.TOAST.DOUBLE_BIAS = (
    True  # add the value bias again with the signal, as the original ViT (v = W_v(a+td) + 2 b_v)
)
_C.MODEL.TOAST.RECON_COEF = 0.0  # reconstruction-loss weight (0 in TOAST tuning, 0.1 for pre-tuning); 0 skips the work
_C.MODEL.TOAST.BOTH_PASSES_CE = False  # pre-tuning option: mean cross-entropy of both passes' logits (AbSViT)
# fresh decoders: trunc_normal | normal (std 0.02) | zero_to_value (A_i trunc_normal, B_i = 0: pass 2 starts as
# pass 1, plus b_v once more with DOUBLE_BIAS True)
_C.MODEL.TOAST.DECODER_INIT = "trunc_normal"
_C.MODEL.TOAST.LITE_RANK = 4  # toast-lite: rank of the update on every A_i and B_i
_C.MODEL.TOAST.LITE_ALPHA = 1.0  # toast-lite: update scale = alpha / rank (loralib's default alpha 1, as the original)

_C.MODEL.PROMPT = CN()
_C.MODEL.PROMPT.NUM_TOKENS = 100  # VPT prompt tokens per layer
_C.MODEL.PROMPT.DEEP = True  # VPT-deep: new prompt tokens before every block (False = VPT-shallow)
_C.MODEL.PROMPT.DROPOUT = 0.0  # dropout on the prompt tokens

_C.MODEL.LORA = CN()
_C.MODEL.LORA.RANK = 4  # LoRA rank (original: 4)
_C.MODEL.LORA.ALPHA = 1.0  # LoRA scale = alpha / rank (original loralib alpha 1 -> 0.25)
_C.MODEL.LORA.DROPOUT = 0.0  # dropout on the LoRA input
_C.MODEL.LORA.TARGETS = ["qkv"]  # module-name suffixes that get LoRA (peft target_modules)

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
_C.SOLVER.OPTIMIZER = (
    "adamw"  # adamw | sgd (momentum) | lbfgs (linear probe on cached features: full batch, converged)
)
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
# Protocol and caches (vis-protocol: issue 11)
# ---------------------------------------------------------------------------
_C.SOLVER.TEST_PERIOD = 0  # 0: test once at the end (last epoch, and the best-val adapter); k > 0: also every k epochs
_C.SOLVER.EVAL_PERIOD = 1  # validate every k epochs (and at the last); the best epoch is chosen among these
_C.DATA.CACHE_FEATURES = (
    False  # linear probe: the frozen backbone runs once per image; the head trains on its pre-logits
)
_C.MODEL.TOAST.CACHE_FIRST_PASS = (
    False  # TOAST: pass 1's tokens (eval mode: no stochastic depth) computed once per image
)
_C.DATA.CACHE_DIR = (
    ""  # "" = caches live in memory (shared by the runs of one process); a folder = memory-mapped files
)
_C.DATA.CACHE_DTYPE = "float32"  # float32 | float16 | bfloat16: storage of cached tokens/features (float32: exact)
CACHE_DTYPES = ("float16", "bfloat16", "float32")
FIRST_PASS_TYPES = ("toast", "toast-lite")  # transfer types with a frozen first pass


def check_protocol_keys(cfg: CN) -> None:
    """Values of the protocol and cache keys, checked with the config (before torch is imported)."""
    if cfg.SOLVER.TEST_PERIOD < 0:
        raise ValueError(
            f"SOLVER.TEST_PERIOD must be >= 0 (0 = test after the last epoch only), got {cfg.SOLVER.TEST_PERIOD}"
        )
    if cfg.SOLVER.EVAL_PERIOD < 1:
        raise ValueError(f"SOLVER.EVAL_PERIOD must be >= 1, got {cfg.SOLVER.EVAL_PERIOD}")
    if cfg.DATA.NUM_WORKERS < -1:
        raise ValueError(f"DATA.NUM_WORKERS must be >= 0, or -1 for the machine's CPUs; got {cfg.DATA.NUM_WORKERS}")
    if cfg.DATA.CACHE_DTYPE not in CACHE_DTYPES:
        raise ValueError(f"DATA.CACHE_DTYPE must be one of {list(CACHE_DTYPES)}, got {cfg.DATA.CACHE_DTYPE!r}")
    transfer = cfg.MODEL.TRANSFER_TYPE
    if cfg.MODEL.TOAST.CACHE_FIRST_PASS and cfg.DATA.CACHE_FEATURES:
        raise ValueError("set MODEL.TOAST.CACHE_FIRST_PASS (TOAST) or DATA.CACHE_FEATURES (linear), not both")
    if cfg.MODEL.TOAST.CACHE_FIRST_PASS and transfer not in FIRST_PASS_TYPES:
        raise ValueError(
            f"MODEL.TOAST.CACHE_FIRST_PASS is for {' and '.join(FIRST_PASS_TYPES)} (a frozen first pass); "
            f"MODEL.TRANSFER_TYPE is {transfer!r}"
        )
    if cfg.SOLVER.OPTIMIZER == "lbfgs" and not (transfer == "linear" and cfg.DATA.CACHE_FEATURES):
        raise ValueError(
            "SOLVER.OPTIMIZER lbfgs solves the linear probe in full batch on cached features: it needs "
            f"MODEL.TRANSFER_TYPE linear and DATA.CACHE_FEATURES True (got {transfer!r}, {cfg.DATA.CACHE_FEATURES})"
        )
    if cfg.DATA.CACHE_FEATURES and transfer != "linear":
        raise ValueError(
            f"DATA.CACHE_FEATURES is for the linear probe (a frozen backbone); MODEL.TRANSFER_TYPE is {transfer!r} "
            "(TOAST has MODEL.TOAST.CACHE_FIRST_PASS)"
        )


# ---------------------------------------------------------------------------


def get_cfg() -> CN:
    """A fresh copy of the defaults, to merge a YAML file and ``KEY VALUE`` overrides into."""
    return _C.clone()


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
    defaults = flat(_C)
    return {key: value for key, value in flat(cfg).items() if defaults.get(key, object()) != value}


# (key, lowest, highest, highest included): values outside train wrongly without an error (a negative head lr
# ascends the loss, a negative decay grows the weights) or fail only mid-training (stochastic depth of 2.0).
RANGES = (
    ("SOLVER.BASE_LR", 0.0, None, True),
    ("SOLVER.HEAD_LR_MULT", 0.0, None, True),
    ("SOLVER.WEIGHT_DECAY", 0.0, None, True),
    ("SOLVER.WARMUP_EPOCH", 0.0, None, True),
    ("SOLVER.MOMENTUM", 0.0, 1.0, False),
    ("SOLVER.GRAD_CLIP", 0.0, None, True),
    ("SOLVER.LOG_EVERY_N", 1, None, True),
    ("DATA.VAL_FRACTION", 0.0, 1.0, False),
    ("MODEL.DROP_PATH_RATE", 0.0, 1.0, False),
    ("MODEL.HEAD_DROPOUT", 0.0, 1.0, False),
    ("MODEL.MLP_NUM", 0, None, True),
    ("MODEL.PROMPT.DROPOUT", 0.0, 1.0, False),
    ("MODEL.LORA.DROPOUT", 0.0, 1.0, False),
    ("MODEL.LORA.RANK", 1, None, True),
    ("MODEL.TOAST.LITE_RANK", 1, None, True),
    ("MODEL.TOAST.RECON_COEF", 0.0, None, True),
)


def range_problems(cfg: CN) -> list[str]:
    """``KEY must be in [lo, hi), got v`` for every numeric key of ``RANGES`` outside its range."""
    problems = []
    values = flat(cfg)
    for key, low, high, high_included in RANGES:
        value = values[key]
        if value != value or value in (float("inf"), float("-inf")):
            problems.append(f"{key} must be a finite number, got {value}")
        elif value < low or (high is not None and (value > high or (value == high and not high_included))):
            allowed = f">= {low:g}" if high is None else f"in [{low:g}, {high:g}{']' if high_included else ')'}"
            problems.append(f"{key} must be {allowed}, got {value}")
    return problems


def check_config(cfg: CN) -> None:
    """Value checks yacs' type checks cannot make; each problem names the key and what is allowed."""
    problems = []
    for key, value, least in (
        ("SOLVER.TOTAL_EPOCH", cfg.SOLVER.TOTAL_EPOCH, 1),
        ("DATA.BATCH_SIZE", cfg.DATA.BATCH_SIZE, 1),
        ("DATA.CROPSIZE", cfg.DATA.CROPSIZE, 1),
    ):
        if value < least:
            problems.append(f"{key} must be >= {least}, got {value}")
    problems += range_problems(cfg)
    if cfg.DATA.NORMALIZE not in NORMALIZE_CHOICES:
        problems.append(f"DATA.NORMALIZE must be one of {list(NORMALIZE_CHOICES)}, got {cfg.DATA.NORMALIZE!r}")
    if problems:
        raise ValueError("; ".join(problems))
