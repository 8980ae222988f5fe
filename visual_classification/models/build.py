"""``build_model(cfg)``: backbone, weights, transfer method, task head, trainable set, in that order."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import yaml
from yacs.config import CfgNode

from runkit.fingerprint import file_fingerprint
from toast.adapter import (
    ADAPTER_WEIGHTS,
    check_fit,
    convert_original_top_down,
    load_top_down_state,
    read_adapter_config,
    read_adapter_top_down,
    read_tensors,
)

from .backbone import backbone_name, create_backbone, model_width
from .head import build_head
from .transfer import get_transfer_method
from .transfer.registry import HEAD_PREFIX
from .transfer_model import TransferModel
from .weights import load_backbone_state, load_npz, read_state_dict, split_top_down

logger = logging.getLogger(__name__)

# The original's MODEL.TYPE values; "" and "vit" mean "whatever the transfer type needs".
MODEL_TYPES = ("", "vit", "vit_top_down", "vit_bottom_up")


def _check_model_type(cfg: CfgNode, allowed: tuple[str, ...]) -> None:
    model_type, transfer = cfg.MODEL.TYPE, cfg.MODEL.TRANSFER_TYPE
    if model_type not in MODEL_TYPES:
        raise ValueError(f"MODEL.TYPE={model_type!r} is unknown; choose one of {list(MODEL_TYPES)}")
    if model_type in ("vit_top_down", "vit_bottom_up") and model_type not in allowed:
        raise ValueError(f"MODEL.TYPE={model_type!r} cannot be combined with MODEL.TRANSFER_TYPE={transfer!r}")


def _top_down_weights(path: str) -> tuple[dict, str]:
    """Top-down tensors from an adapter folder (``top_down.*``) or an original-format file."""
    source = Path(path)
    if source.is_dir():
        return read_adapter_top_down(source)
    state = convert_original_top_down(read_state_dict(source))
    if not state:
        raise ValueError(
            f"MODEL.TOPDOWN_WEIGHTS={path!r} holds no top-down tensors (decoders.*, prompt, top_down_transform)"
        )
    return state, str(source)


def _source_run_config(adapter_dir: Path) -> dict:
    """The config.yaml of the run that wrote ``adapter_dir`` (``RUN/best`` or ``RUN`` itself), or {}."""
    for candidate in (adapter_dir.parent / "config.yaml", adapter_dir / "config.yaml"):
        if candidate.is_file():
            loaded = yaml.safe_load(candidate.read_text(encoding="utf-8"))
            return loaded if isinstance(loaded, dict) else {}
    return {}


def _weights_identity(model_root: str) -> str:
    """What backbone weights a run used: a local file's content hash, or "" for none (hub or random weights)."""
    if model_root and Path(model_root).is_file():
        return file_fingerprint(model_root)
    return "missing:" + model_root if model_root else ""


def check_top_down_source(cfg: CfgNode, adapter_dir: Path, backbone: str, key: str = "MODEL.TOPDOWN_WEIGHTS") -> None:
    """Refuses a pre-tuned top-down path made for another model: another timm backbone (a ViT-S/16 path on
    DeiT-S/16 has the same width and depth, so the shapes alone would let it through), other backbone weights,
    or another ``MODEL.TOAST.DOUBLE_BIAS`` (the path learned to feed the value bias once or twice)."""
    key = f"{key}={str(adapter_dir)!r}"
    saved_backbone = read_adapter_config(adapter_dir).get("backbone")
    if saved_backbone is not None and saved_backbone != backbone:
        raise ValueError(f"{key} was trained on backbone {saved_backbone!r}, this run uses {backbone!r}")
    source = _source_run_config(adapter_dir)
    model = source.get("MODEL", {}) if isinstance(source.get("MODEL"), dict) else {}
    double_bias = (model.get("TOAST") or {}).get("DOUBLE_BIAS")
    if double_bias is not None and double_bias != cfg.MODEL.TOAST.DOUBLE_BIAS:
        raise ValueError(
            f"{key} was trained with MODEL.TOAST.DOUBLE_BIAS {double_bias}, this run sets "
            f"{cfg.MODEL.TOAST.DOUBLE_BIAS}; use the same value (the path learned around it)"
        )
    if "MODEL_ROOT" in model:
        theirs, ours = model["MODEL_ROOT"] or "", cfg.MODEL.MODEL_ROOT
        if theirs and not Path(theirs).is_file():
            logger.warning("%s: its run's backbone weights %s are gone; cannot check they match %s", key, theirs, ours)
        elif _weights_identity(theirs) != _weights_identity(ours):
            raise ValueError(
                f"{key} was trained on backbone weights MODEL.MODEL_ROOT={theirs!r}, this run loads "
                f"MODEL.MODEL_ROOT={ours!r} (other content); pre-tune on the weights you tune"
            )


def init_from_run(model: TransferModel, cfg: CfgNode, backbone: str) -> None:
    """``MODEL.INIT_FROM``: starts every tensor the method adapts, except the task head, from another run's
    adapter folder (e.g. ``RUN/best`` of the same method trained on a source task: sequential transfer).

    The other run must have used the same transfer type, backbone and backbone weights, and its adapter must
    hold exactly this model's non-head tensors with the same shapes; anything else is refused by name. A
    method that trains nothing but the head (``linear``) has nothing to start from and is refused too.
    """
    folder = Path(cfg.MODEL.INIT_FROM)
    key = f"MODEL.INIT_FROM={str(folder)!r}"
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise FileNotFoundError(f"{key}: no {ADAPTER_WEIGHTS} there; give an adapter folder such as RUN/best")
    saved_type = read_adapter_config(folder).get("transfer_type")
    if saved_type != model.transfer_type:
        raise ValueError(f"{key} was trained with transfer type {saved_type!r}, this run uses {model.transfer_type!r}")
    check_top_down_source(cfg, folder, backbone, key="MODEL.INIT_FROM")
    own = {n: t for n, t in model.adapter_state_dict().items() if not n.startswith(HEAD_PREFIX)}
    if not own:
        raise ValueError(f"{key}: transfer type {model.transfer_type!r} trains nothing but the head; nothing to load")
    saved = {n: t for n, t in read_tensors(folder / ADAPTER_WEIGHTS).items() if not n.startswith(HEAD_PREFIX)}
    check_fit(own, saved, "MODEL.INIT_FROM", repr(str(folder)))
    with torch.no_grad():
        for n, tensor in saved.items():
            own[n].copy_(tensor)
    logger.info("started %d tensors (all but the head) from %s", len(saved), folder)


def build_model(cfg: CfgNode) -> TransferModel:
    """Builds the transfer model described by ``cfg`` (see ``visual_classification.config``).

    Weights come from timm's hub (``MODEL.PRETRAINED``) or a local file (``MODEL.MODEL_ROOT``, which wins); files in
    the original TOAST release format also initialise the top-down path. Every tensor of the file must
    fit the backbone, except the old classifier, which is dropped.
    """
    method = get_transfer_method(cfg.MODEL.TRANSFER_TYPE)
    _check_model_type(cfg, method.model_types)
    name = backbone_name(cfg)
    backbone = create_backbone(cfg)

    file_top_down: dict = {}
    if cfg.MODEL.MODEL_ROOT:
        path = Path(cfg.MODEL.MODEL_ROOT)
        if path.suffix == ".npz":
            load_npz(backbone, path)
        else:
            backbone_state, file_top_down = split_top_down(read_state_dict(path))
            load_backbone_state(backbone, backbone_state, str(path))
        logger.info("loaded backbone weights from %s", path)

    head = build_head(
        model_width(backbone), cfg.DATA.NUMBER_CLASSES, cfg.MODEL.MLP_NUM, cfg.MODEL.HEAD_DROPOUT, cfg.MODEL.HEAD_INIT
    )
    model = method.build(backbone, head, cfg, name)

    top_down = getattr(model, "top_down", None)
    if file_top_down:
        if top_down is None:
            logger.info(
                "%s holds %d top-down tensors; transfer type %r has no top-down path, so they are not used",
                cfg.MODEL.MODEL_ROOT,
                len(file_top_down),
                method.name,
            )
        else:
            load_top_down_state(top_down, convert_original_top_down(file_top_down), cfg.MODEL.MODEL_ROOT)
            logger.info("loaded the top-down path from %s", cfg.MODEL.MODEL_ROOT)
    if cfg.MODEL.TOPDOWN_WEIGHTS:
        if top_down is None:
            raise ValueError(
                f"MODEL.TOPDOWN_WEIGHTS is set, but MODEL.TRANSFER_TYPE={method.name!r} has no top-down path"
            )
        if Path(cfg.MODEL.TOPDOWN_WEIGHTS).is_dir():
            check_top_down_source(cfg, Path(cfg.MODEL.TOPDOWN_WEIGHTS), name)
        state, source = _top_down_weights(cfg.MODEL.TOPDOWN_WEIGHTS)
        load_top_down_state(top_down, state, source)
        logger.info("loaded the top-down path from %s", source)
    elif top_down is not None and not file_top_down:
        logger.info(
            "top-down path initialised fresh (%s decoders, prompt randn, transform = identity)",
            cfg.MODEL.TOAST.DECODER_INIT,
        )

    method.mark_trainable(model)
    if cfg.MODEL.INIT_FROM:
        init_from_run(model, cfg, name)
    logger.info(model.summary())
    return model
