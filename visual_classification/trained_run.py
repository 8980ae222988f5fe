"""A finished run, loaded back for use: its model (config.yaml + ``best/``), class names and preprocessing.

``predict`` and ``visualize`` share it, so both see images exactly as the run's evaluation did: the
layout's eval transform at the run's crop size, normalised with the mean/std the run recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from yacs.config import CfgNode

from runkit.cli import UserError
from runkit.files import read_json_object
from runkit.ranges import lookup
from toast.adapter import load_adapter

from .config import load_config
from .data import LAYOUTS, load_rgb, task_layout
from .data.transforms import Normalize, normalization, pixel_transform
from .engine import run_files as rf
from .engine.run_inputs import check_weights_unchanged
from .models.backbone import network_settings
from .models.build import build_model
from .models.transfer_model import TransferModel

logger = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    cfg: CfgNode
    model: TransferModel
    classes: list[str]  # indexed by label
    preprocessing: dict  # layout, transform, crop, mean, std

    def pixels(self, path: Path) -> torch.Tensor:
        """uint8 CHW pixels as the run's evaluation saw them (before normalisation)."""
        transform = pixel_transform(self.preprocessing["transform"], self.preprocessing["crop"])
        return transform(load_rgb(path))

    @property
    def normalize(self) -> Normalize:
        return Normalize(self.preprocessing["mean"], self.preprocessing["std"])


def _read_json(path: Path) -> dict:
    return read_json_object(path, "restore it from the run or train the run again")


def _results(run_dir: Path) -> dict:
    path = run_dir / rf.RESULTS
    return _read_json(path) if path.is_file() else {}


def _num_classes(adapter_config: Path) -> int:
    value = _read_json(adapter_config).get("num_classes")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{adapter_config} lacks the key 'num_classes' (a positive integer); got {value!r}")
    return value


def _preprocessing(cfg: CfgNode, model: TransferModel, results: dict) -> dict:
    """The run's record, or (a run not finished yet: no results.json) the config's layout and normalisation."""
    if "preprocessing" in results:
        return results["preprocessing"]
    layout = LAYOUTS[cfg.DATA.FORMAT] if cfg.DATA.FORMAT in LAYOUTS else type(task_layout(cfg))
    mean, std = normalization(cfg.DATA.NORMALIZE, model.backbone_name)
    return {
        "layout": layout.name,
        "transform": layout.eval_transform,
        "crop": cfg.DATA.CROPSIZE,
        "mean": mean,
        "std": std,
    }


def check_folder_settings(cfg: CfgNode, source: Path, given: Iterable[str]) -> None:
    """Refuses a run folder's config that asks to reach the network or run code (see ``network_settings``) unless
    the current command line gave that key: a folder someone sent is data, not a command."""
    asked = {key: what for key, what in network_settings(cfg).items() if key not in set(given)}
    if asked:
        key, what = next(iter(asked.items()))
        raise UserError(
            f"{source} sets {key} {lookup(cfg, key)} (it {what}); a folder being read does not choose what reaches "
            f"the network or runs code: pass {key} {lookup(cfg, key)} on this command line to allow it "
            "(predict: --set KEY VALUE), or MODEL.MODEL_ROOT FILE for local weights"
        )


def load_trained_run(run_dir: Path, opts: list[str] = (), allow: Iterable[str] = ()) -> TrainedRun:
    """The run in ``run_dir`` (its best adapter on its backbone), in eval mode; ``opts`` override its config.

    Settings that reach the network (hub weights) are refused unless ``opts`` or ``allow`` (keys the command
    line gave) name them."""
    config = run_dir / rf.CONFIG
    adapter = run_dir / rf.BEST / "adapter_config.json"
    for needed in (config, adapter):
        if not needed.is_file():
            raise FileNotFoundError(f"{run_dir} is not a training run folder: {needed} is missing")
    cfg = load_config(str(config), list(opts))
    check_folder_settings(cfg, config, [*opts[0::2], *allow])
    model_cfg = cfg.clone()
    model_cfg.defrost()
    num_classes = _num_classes(adapter)
    results = _results(run_dir)  # read before the model is built: a damaged file is named at once
    check_weights_unchanged(run_dir, cfg)  # the backbone it trained on, by content
    model_cfg.DATA.NUMBER_CLASSES = num_classes
    model = build_model(model_cfg).eval()
    load_adapter(model, run_dir / rf.BEST, expect={"backbone": model.backbone_name})
    classes = results.get("classes")
    if not classes:
        logger.warning("%s records no class names (it has not finished: no results.json): labels are numbers", run_dir)
        classes = [str(i) for i in range(num_classes)]
    if len(classes) != num_classes:
        raise ValueError(f"{run_dir / rf.RESULTS} lists {len(classes)} classes, the adapter has {num_classes}")
    return TrainedRun(cfg, model, classes, _preprocessing(cfg, model, results))
