"""A finished language run loaded back: its config (``config.yaml`` ← a YAML file ← ``KEY VALUE`` pairs), its
tokenizer and its model, loaded as its transfer method's registration says (an adapter on the base model, or the
whole tuned model). ``generate --adapter RUN_DIR`` and experiments load runs through :func:`load_trained`.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn
from yacs.config import CfgNode

from runkit import config_files
from runkit.cli import UserError

from . import run_files as rf
from .config import check_ranges, get_cfg, keep_caller_only_settings, read_run_config
from .methods import TRANSFER_METHODS
from .model import build_model, build_tokenizer, with_model_path
from .run_inputs import check_adapter_base


def run_config(run_dir: Path, config_file: str = "", opts: list[str] = ()) -> CfgNode:
    """The run's ``config.yaml`` ← ``config_file`` ← ``opts``; stops (before any model loads) when ``run_dir`` is
    not a run folder or its weights cannot be read back."""
    saved = run_dir / rf.CONFIG
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--adapter {run_dir} does not exist (give the OUTPUT_DIR of a train run)")
    if not saved.is_file():
        raise ValueError(f"--adapter {run_dir} is not a run folder: it has no {rf.CONFIG} (written by train)")
    cfg = read_run_config(saved)  # TRAIN.* fields of another transformers version are named and left out
    call = get_cfg()  # what this call sets, for the keys that only a call may turn on
    for node in (cfg, call):
        if config_file:
            config_files.merge_yaml(node, config_file)
        config_files.merge_overrides(node, list(opts))
    keep_caller_only_settings(cfg, call, str(saved))
    check_ranges(cfg)
    transfer = cfg.MODEL.TRANSFER_TYPE
    expected = TRANSFER_METHODS.lookup(transfer).run_weights
    if not any((run_dir / name).is_file() for name in expected):
        raise ValueError(f"--adapter {run_dir}: a {transfer} run, but none of {list(expected)} is there (unfinished?)")
    rf.check_run_files(run_dir)
    check_folder_code(run_dir, cfg)
    cfg.MODEL.TOPDOWN_WEIGHTS = ""  # the run's own files hold everything it trained
    cfg.freeze()
    return cfg


CODE_MAPS = ("config.json", "tokenizer_config.json")  # files whose ``auto_map`` points loading at code in the folder


def check_folder_code(run_dir: Path, cfg: CfgNode) -> None:
    """Refuses a run folder whose model or tokenizer files map loading onto Python code (``auto_map``) unless the
    call allows code (``MODEL.TRUST_REMOTE_CODE True`` on its command line): without it ``transformers`` would
    load its own class instead, silently not the model the folder describes."""
    if cfg.MODEL.TRUST_REMOTE_CODE:
        return
    for name in CODE_MAPS:
        path = run_dir / name  # read whole by rf.check_run_files first
        auto_map = json.loads(path.read_text(encoding="utf-8")).get("auto_map") if path.is_file() else None
        if auto_map:
            raise UserError(
                f"{path} maps loading onto code in {run_dir} (auto_map: {auto_map}); it runs only if you trust the "
                "folder and pass MODEL.TRUST_REMOTE_CODE True on the command line"
            )


def tokenizer_source(cfg: CfgNode, run_dir: Path | None) -> CfgNode:
    """The run's own tokenizer files when it saved them (they hold the pad token training used)."""
    if run_dir is None or not (run_dir / rf.TOKENIZER_CONFIG).is_file():
        return cfg
    return with_model_path(cfg, run_dir)


def model_source(cfg: CfgNode, run_dir: Path | None) -> str:
    """Where the model's weights (and config) load from: the run folder for a method whose runs hold the whole
    model, else the base model."""
    if run_dir is not None and TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE).whole_model:
        return str(run_dir)
    return cfg.MODEL.NAME_OR_PATH


def base_matched(cfg: CfgNode, run_dir: Path | None) -> bool:
    """Whether ``MODEL.NAME_OR_PATH`` was found to hold, by content, the base the run was trained on (it stops
    when it differs); False for a run that holds the whole model, which needs no base."""
    if run_dir is None or TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE).whole_model:
        return False
    return check_adapter_base(run_dir, cfg)


def load_model(cfg: CfgNode, run_dir: Path | None, matched: bool = False) -> nn.Module:
    """The configured model, with what the run in ``run_dir`` trained (its method loads it); without a run, the
    model the config builds. ``matched``: see :func:`base_matched`."""
    if run_dir is None:
        return build_model(cfg)
    return TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE).load_run(cfg, run_dir, matched)


def load_trained(run_dir: str | Path, cfg: CfgNode | None = None) -> tuple[nn.Module, object, CfgNode]:
    """``(model, tokenizer, cfg)`` of the finished run in ``run_dir`` (``cfg``: its config, or
    :func:`run_config` of it), the model in eval mode."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir) if cfg is None else cfg
    tokenizer = build_tokenizer(tokenizer_source(cfg, run_dir))
    model = load_model(cfg, run_dir, base_matched(cfg, run_dir)).eval()
    return model, tokenizer, cfg
