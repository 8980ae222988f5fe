"""The frozen-able backbone: any timm ViT-family model, built without its classifier."""

from __future__ import annotations

import logging

import timm
from torch import nn
from yacs.config import CfgNode

from ..config import get_cfg

logger = logging.getLogger(__name__)

# The original's MODEL.SIZE values, used when MODEL.BACKBONE is left at its default.
SIZE_TO_BACKBONE = {"base": "vit_base_patch16_224", "large": "vit_large_patch16_224"}


def backbone_name(cfg: CfgNode) -> str:
    """MODEL.BACKBONE, or the original's MODEL.SIZE mapped to a timm name when only that is set."""
    size = cfg.MODEL.SIZE
    if not size:
        return cfg.MODEL.BACKBONE
    if size not in SIZE_TO_BACKBONE:
        raise ValueError(f"MODEL.SIZE must be one of {sorted(SIZE_TO_BACKBONE)} (or empty), got {size!r}")
    if cfg.MODEL.BACKBONE not in (get_cfg().MODEL.BACKBONE, SIZE_TO_BACKBONE[size]):
        raise ValueError(
            f"MODEL.SIZE={size!r} and MODEL.BACKBONE={cfg.MODEL.BACKBONE!r} disagree; set only MODEL.BACKBONE"
        )
    return SIZE_TO_BACKBONE[size]


def uses_hub_weights(cfg: CfgNode) -> bool:
    """``MODEL.PRETRAINED``, unless ``MODEL.MODEL_ROOT`` names a local file: the more specific setting wins."""
    if cfg.MODEL.PRETRAINED and cfg.MODEL.MODEL_ROOT:
        logger.info(
            "MODEL.MODEL_ROOT=%s wins over MODEL.PRETRAINED True: the local file is loaded, not timm's hub weights",
            cfg.MODEL.MODEL_ROOT,
        )
        return False
    return bool(cfg.MODEL.PRETRAINED)


def network_settings(cfg: CfgNode) -> dict[str, str]:
    """``{key: what it does}`` for the settings of ``cfg`` that reach the network or run code when the model is
    built: a command takes them from its own command line, never from a folder it reads (a run someone sent)."""
    found = {}
    if cfg.MODEL.PRETRAINED and not cfg.MODEL.MODEL_ROOT:
        found["MODEL.PRETRAINED"] = f"downloads the weights of {backbone_name(cfg)!r} from the timm hub"
    return found


def create_backbone(cfg: CfgNode) -> nn.Module:
    """``timm.create_model`` with no classifier, the configured stochastic depth and input size."""
    name = backbone_name(cfg)
    hub_weights = uses_hub_weights(cfg)
    try:
        model = timm.create_model(
            name,
            pretrained=hub_weights,
            num_classes=0,
            drop_path_rate=cfg.MODEL.DROP_PATH_RATE,
            img_size=cfg.DATA.CROPSIZE,
        )
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(
                f"MODEL.BACKBONE={name!r} is not a timm model; see timm.list_models('vit_*') for ViT names"
            ) from err
        raise
    except TypeError as err:
        if "img_size" not in str(err):
            raise
        # Convolutional backbones (ConvNeXt) take any input size and have no img_size argument.
        model = timm.create_model(name, pretrained=hub_weights, num_classes=0, drop_path_rate=cfg.MODEL.DROP_PATH_RATE)
    check_vit_family(model, name)
    check_crop_size(model, name, cfg.DATA.CROPSIZE)
    return model


def check_crop_size(model: nn.Module, name: str, crop: int) -> None:
    """A ViT sees whole patches only: a crop that is not a multiple of the patch would lose its edge silently."""
    patch_embed = getattr(model, "patch_embed", None)
    patch = getattr(patch_embed, "patch_size", None)
    if patch is None:
        return
    side = patch[0] if isinstance(patch, (tuple, list)) else int(patch)
    if crop % side:
        lower, upper = crop // side * side, (crop // side + 1) * side
        raise ValueError(
            f"DATA.CROPSIZE={crop} is not a multiple of {name}'s patch size {side}; use {lower or upper} or {upper}"
        )


def check_vit_family(model: nn.Module, name: str) -> None:
    """TOAST and the baselines here need ``blocks[i].attn.qkv`` (a fused Linear) and timm's feature/head split,
    or a timm ConvNeXt (top-down signals into its stage inputs)."""
    from timm.models.convnext import ConvNeXt

    if isinstance(model, ConvNeXt):
        return
    problems = []
    for attr in ("blocks", "forward_features", "forward_head", "norm"):
        if not hasattr(model, attr):
            problems.append(f"no `{attr}`")
    blocks = getattr(model, "blocks", [])
    for i, block in enumerate(blocks):
        qkv = getattr(getattr(block, "attn", None), "qkv", None)
        if not isinstance(qkv, nn.Linear):
            problems.append(f"blocks.{i}.attn.qkv is {type(qkv).__name__}, not a fused nn.Linear")
            break
    if problems:
        raise ValueError(
            f"MODEL.BACKBONE={name!r} ({type(model).__name__}) is not a supported ViT: {'; '.join(problems)}. "
            "Supported: timm vision transformers with fused attn.qkv (vit_*, deit_*, vit_*_dinov2, vit_*_clip_*) "
            "and timm ConvNeXt (convnext_*)."
        )


def model_width(model: nn.Module) -> int:
    return model.num_features if hasattr(model, "num_features") else model.embed_dim
