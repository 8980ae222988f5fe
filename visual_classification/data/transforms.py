"""Image transforms: VTAB's plain resize, FGVC's resize + crop (+ flip), normalised as ``DATA.NORMALIZE`` says."""

from __future__ import annotations

from typing import Literal

import torch
from timm.data import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_INCEPTION_MEAN,
    IMAGENET_INCEPTION_STD,
    create_transform,
    resolve_data_config,
)
from timm.models import get_pretrained_cfg
from torchvision import transforms as T

Mode = Literal["resize", "crop_train", "crop_eval"]


CROP_PCT = 0.875  # the original's short-side sizes (224→256, 384→438, 448→512): crop / 0.875


def resize_for_crop(crop: int) -> int:
    """The short side an image is resized to before a ``crop``×``crop`` crop."""
    return int(crop / CROP_PCT)


def pixel_transform(mode: Mode, crop: int):
    """PIL image → uint8 CHW tensor at ``crop``×``crop``; deterministic unless ``mode == 'crop_train'``.

    The evaluation transforms are timm's (``create_transform`` without normalisation: normalising happens on
    the batch, after caches); the FGVC training one (resize, random crop, flip) is the original's, which is
    not among timm's training recipes (those use RandomResizedCrop), so it stays a torchvision pipeline.
    """
    if mode == "resize":  # VTAB-1k: resize to the crop size, aspect ratio not kept, no augmentation
        return create_transform(crop, crop_pct=1.0, crop_mode="squash", interpolation="bilinear", normalize=False)
    if mode == "crop_eval":
        return create_transform(crop, crop_pct=CROP_PCT, crop_mode="center", interpolation="bilinear", normalize=False)
    if mode == "crop_train":
        steps = [T.Resize(resize_for_crop(crop), antialias=True), T.RandomCrop(crop), T.RandomHorizontalFlip(0.5)]
        return T.Compose([*steps, T.PILToTensor()])
    raise ValueError(f"unknown transform mode {mode!r}")


class Normalize:
    """uint8 CHW → float, normalised with the backbone's own mean and std (timm's ``pretrained_cfg``)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.float() / 255.0 - self.mean) / self.std


# DATA.NORMALIZE: fixed (mean, std) pairs; "backbone" reads the backbone's own timm pretrained_cfg instead.
NORMALIZATIONS = {
    "imagenet": (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),  # the original's, for every backbone
    "inception": (IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD),  # 0.5 / 0.5
}


def normalization(choice: str, backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for ``DATA.NORMALIZE``: ``backbone`` (the timm model name's ``pretrained_cfg``, known without
    building the model), ``imagenet`` or ``inception``."""
    if choice == "backbone":
        pretrained = get_pretrained_cfg(backbone)
        config = resolve_data_config(pretrained_cfg=pretrained.to_dict() if pretrained else {})
        return tuple(config["mean"]), tuple(config["std"])
    if choice not in NORMALIZATIONS:
        raise ValueError(f"DATA.NORMALIZE must be backbone, {', '.join(NORMALIZATIONS)}; got {choice!r}")
    mean, std = NORMALIZATIONS[choice]
    return tuple(mean), tuple(std)
