"""Shared helpers: tiny timm ViTs built through the real ``build_model`` path, on CPU, without weights."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
import torch

from visual_classification.config import get_cfg
from visual_classification.models.build import build_model

TINY_BACKBONE = "vit_tiny_patch16_224"  # 12 blocks, width 192; at 32 px it has 4 patches + CLS
TINY_SIZE = 32


@contextlib.contextmanager
def refused(capsys: pytest.CaptureFixture, pattern: str) -> Iterator[None]:
    """The block must stop as a CLI stops for a user's mistake: exit status 2 and an ``error:`` line matching
    ``pattern``."""
    with pytest.raises(SystemExit) as stop:
        yield
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert re.search(f"error: .*{pattern}", err), err


@pytest.fixture(autouse=True)
def _private_fingerprint_memo(tmp_path_factory, monkeypatch):
    """Each test memoises file hashes in its own index, never in the user's ~/.cache."""
    monkeypatch.setenv("TOAST_FINGERPRINT_INDEX", str(tmp_path_factory.mktemp("memo") / "fingerprints.json"))


def tiny_cfg(transfer: str = "toast", **overrides):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE = TINY_BACKBONE
    cfg.MODEL.TRANSFER_TYPE = transfer
    cfg.MODEL.DROP_PATH_RATE = 0.0
    cfg.MODEL.PROMPT.NUM_TOKENS = 3
    cfg.DATA.CROPSIZE = TINY_SIZE
    cfg.DATA.NUMBER_CLASSES = 5
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for parent in parents:
            node = getattr(node, parent)
        setattr(node, leaf, value)
    return cfg


def build_tiny(transfer: str = "toast", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_model(tiny_cfg(transfer, **overrides))


def images(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def randomise_top_down(model, scale: float = 0.2, seed: int = 3) -> None:
    """Non-zero, non-trivial top-down weights, so that equivalence tests can fail."""
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in model.top_down.named_parameters():
        if name == "transform":
            tensor.add_(scale * torch.randn(tensor.shape, generator=gen))
        else:
            tensor.copy_(scale * torch.randn(tensor.shape, generator=gen))


@pytest.fixture
def tiny_images() -> torch.Tensor:
    return images()


@pytest.fixture(autouse=True, scope="session")
def datasets_cache_in_tmp(tmp_path_factory):
    """Arrow files that ``datasets`` writes during tests go to a temporary folder, not the user's cache."""
    import datasets

    saved = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = tmp_path_factory.mktemp("hf_datasets_cache")
    yield
    datasets.config.HF_DATASETS_CACHE = saved
