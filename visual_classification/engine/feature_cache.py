"""Caches of what a frozen backbone computes once per image (a method's frozen prefix, see ``frozen_prefix``).

Without augmentation (VTAB resizes only) the frozen backbone maps each image to the same tokens every
epoch. ``MODEL.TOAST.CACHE_FIRST_PASS`` keeps pass 1's tokens (after the final norm, in eval mode, so
without stochastic depth); ``DATA.CACHE_FEATURES`` keeps the linear probe's pre-logits, so its head trains
without running the backbone at all. What a cache holds is its strategy's ``compute``. A cache is keyed by checksums of everything its content depends on
(backbone weights, crop size and transform, normalisation, the image list with each image's content hash,
storage dtype), so every run of one ``tune`` grid and its seeds on the same task reuses it: in memory within
one process, or as memory-mapped ``.npy`` files under ``DATA.CACHE_DIR`` across processes. Image hashes come
from ``runkit.fingerprint`` (memoised by path, size, mtime, ctime and inode: an image is read once, and a
same-size rewrite with its mtime restored still changes the key). A cache file that cannot be read, has the
wrong shape or dtype, or holds non-finite values is computed again with a warning naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import timm
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from yacs.config import CfgNode

from runkit.files import atomic_path
from runkit.fingerprint import files_fingerprint
from runkit.runs import is_main_process

from ..data.datasets import DECODING
from .distributed import barrier

if TYPE_CHECKING:
    from .frozen_prefix import PrefixStrategy

logger = logging.getLogger(__name__)

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

_MEMORY: dict[str, torch.Tensor] = {}  # key → features, shared by the runs of one process (tune's grid and seeds)


def random_steps(dataset) -> list[str] | None:
    """Names of the random steps of ``dataset``'s pixel transform; ``None`` when it cannot be told."""
    steps = getattr(getattr(dataset, "pixels", None), "transforms", None)
    if steps is None:
        return None
    return [type(step).__name__ for step in steps if type(step).__name__.startswith("Random")]


def check_deterministic(dataset, key_name: str) -> None:
    """Refuses a cache over a split whose transform is random (FGVC's random crop and flip)."""
    random = random_steps(dataset)
    if random is None:
        raise ValueError(f"{key_name}: cannot tell whether the training transform is deterministic ({dataset!r})")
    if random:
        raise ValueError(
            f"{key_name} needs a deterministic training transform, but this task's augments ({', '.join(random)}): "
            "every epoch sees other pixels, so there is nothing to reuse. Turn the cache off for this task, or train "
            "without augmentation (DATA.AUGMENT False: the evaluation transform for training too) "
            "(FGVC trains with random crops and flips; VTAB-1k only resizes)"
        )


def warn_stochastic_depth(cfg: CfgNode, key_name: str) -> None:
    """A cache computes the frozen backbone once, in eval mode: with stochastic depth on, training then differs
    from the original's (drop path in every training forward), so say so, naming both keys."""
    if cfg.MODEL.DROP_PATH_RATE > 0:
        logger.warning(
            "%s: cached features are computed without stochastic depth, so MODEL.DROP_PATH_RATE %g is not applied "
            "where the cache replaces the backbone (the original applies it in every training forward); this "
            "trades fidelity for speed. Set %s False to keep the method as published",
            key_name,
            cfg.MODEL.DROP_PATH_RATE,
            key_name,
        )


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def weights_digest(module: nn.Module) -> str:
    """Checksum of every tensor of ``module`` (names, shapes, dtypes and values)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def images_digest(samples: list[tuple[Path, int]]) -> str:
    """Checksum of the image list in order: each image's path and content hash (a replaced image changes it,
    whatever its size and mtime)."""
    paths = [str(Path(path).resolve()) for path, _label in samples]
    hashes = files_fingerprint(paths)
    return _digest("\n".join(f"{path}\t{hashes[path]}" for path in paths))


def cache_key(kind: str, backbone: str, crop: int, dataset, dtype: str, autocast: bool, model_name: str = "") -> str:
    """The cache's name: changes whenever the backbone (timm model name, timm version, weights), crop size,
    transform or image list change. The name and version matter beside the weights: two architectures can
    hold the same tensors (a model with other pooling or norm placement), and a timm upgrade can change a
    model's forward."""
    normalize = getattr(dataset, "normalize", None)
    stats = [getattr(normalize, "mean", None), getattr(normalize, "std", None)]
    description = {
        "kind": kind,
        "model": model_name,
        "timm": timm.__version__,
        "backbone": backbone,
        "crop": crop,
        "transform": repr(getattr(dataset, "pixels", None)),
        "normalize": [s.flatten().tolist() if isinstance(s, torch.Tensor) else s for s in stats],
        "images": images_digest(dataset.samples),
        "decoding": DECODING,
        "dtype": dtype,
        "autocast": autocast,
    }
    return f"{kind}-{_digest(json.dumps(description, sort_keys=True))[:24]}"


def compute_features(
    model: nn.Module,
    dataset: Dataset,
    strategy: PrefixStrategy,
    batch: int,
    workers: int,
    device: torch.device,
    autocast,
    dtype,
) -> torch.Tensor:
    """Runs the frozen backbone over ``dataset`` in order, in eval mode, computing what ``strategy`` caches;
    returns the features on the CPU."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers, generator=torch.Generator())
    parts = []
    try:
        for images, _labels in loader:
            with autocast:
                features = strategy.compute(model, images.to(device))
            parts.append(features.to("cpu", dtype))
    finally:
        model.train(was_training)
    return torch.cat(parts)


@dataclass
class CacheComputation:
    """How a missing cache is computed: the model whose backbone runs, the strategy that says what it computes,
    and the loader settings."""

    model: nn.Module
    strategy: PrefixStrategy
    dtype: torch.dtype
    batch: int
    workers: int
    device: torch.device
    autocast: object

    def __call__(self, dataset: Dataset) -> torch.Tensor:
        return compute_features(
            self.model, dataset, self.strategy, self.batch, self.workers, self.device, self.autocast, self.dtype
        )

    @torch.no_grad()
    def row_shape(self, crop: int) -> tuple[int, ...]:
        """The shape of one image's cached row (tokens × width, or width): a blank image through the backbone."""
        backbone, was_training = self.model.backbone, self.model.backbone.training
        backbone.eval()  # no stochastic depth: the global RNG does not move
        try:
            row = self.strategy.compute(self.model, torch.zeros(1, 3, crop, crop, device=self.device))
        finally:
            backbone.train(was_training)
        return tuple(row.shape[1:])


def cached_splits(data, cfg: CfgNode, compute: CacheComputation, autocast_on: bool) -> dict[str, torch.Tensor]:
    """The cache of every split of ``data`` (``train``, ``val``, ``test`` when present), found or computed.

    Refused by name when the training transform is random, or the model cannot give what the cache holds.
    """
    kind = compute.strategy.kind
    name = kind.config_key
    check_deterministic(data.train, name)
    warn_stochastic_depth(cfg, name)
    if not compute.strategy.available(compute.model):
        raise ValueError(
            f"{name}: {type(compute.model).__name__} cannot take {kind.what} from a cache (the ViT models only)"
        )
    backbone = weights_digest(compute.model.backbone)
    caches = {}
    for split in ("train", "val", "test"):
        dataset = getattr(data, split)
        if dataset is not None:
            key = cache_key(
                kind.name,
                backbone,
                cfg.DATA.CROPSIZE,
                dataset,
                cfg.DATA.CACHE_DTYPE,
                autocast_on,
                model_name=getattr(compute.model, "backbone_name", ""),
            )
            caches[split] = cached_features(
                key,
                cfg.DATA.CACHE_DIR,
                compute.dtype,
                lambda d=dataset: compute(d),
                lambda d=dataset: (len(d), *compute.row_shape(cfg.DATA.CROPSIZE)),
            )
            if len(caches[split]) != len(dataset):
                raise ValueError(
                    f"feature cache {key} ({cfg.DATA.CACHE_DIR or 'memory'}) holds {len(caches[split])} rows for the "
                    f"{len(dataset)} images of the {split} split; delete it to have it computed again"
                )
    return caches


def _save(path: Path, features: torch.Tensor) -> None:
    array = features.view(torch.int16).numpy() if features.dtype == torch.bfloat16 else features.numpy()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def _load(path: Path, dtype: torch.dtype) -> torch.Tensor:
    array = np.load(path, mmap_mode="c")  # copy-on-write mapping: pages are read when used, never written back
    tensor = torch.from_numpy(array)
    return tensor.view(torch.bfloat16) if dtype == torch.bfloat16 else tensor


_STORED = {torch.float16: np.float16, torch.bfloat16: np.int16, torch.float32: np.float32}  # what _save writes
_CHECK_ROWS = 256  # rows scanned for non-finite values at a time (bounded memory on a large cache)


def first_non_finite_row(features: torch.Tensor) -> int | None:
    """The first row holding a NaN or an infinity, in chunks; ``None`` when all are finite."""
    for start in range(0, len(features), _CHECK_ROWS):
        chunk = features[start : start + _CHECK_ROWS].float()
        bad = (~torch.isfinite(chunk).reshape(len(chunk), -1).all(dim=1)).nonzero()
        if len(bad):
            return start + int(bad[0])
    return None


def cache_file_problem(path: Path, dtype: torch.dtype, shape: tuple[int, ...]) -> str | None:
    """What is wrong with the cache file (unreadable, truncated, wrong shape or dtype, non-finite), or ``None``."""
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        return f"cannot be read as a .npy array ({err}): truncated or not a cache file"
    expected = _STORED[dtype]
    if array.dtype != expected or tuple(array.shape) != tuple(shape):
        return (
            f"holds a {array.dtype} array of shape {tuple(array.shape)}, expected {np.dtype(expected)} of shape "
            f"{tuple(shape)} ({shape[0]} images of the split)"
        )
    row = first_non_finite_row(_load(path, dtype))
    if row is not None:
        return f"holds non-finite values (NaN or inf) in row {row}"
    return None


def _computed(key: str, compute) -> torch.Tensor:
    """Freshly computed features, refused when the backbone's output is not finite in the storage dtype."""
    features = compute()
    row = first_non_finite_row(features)
    if row is not None:
        raise ValueError(
            f"feature cache {key}: the frozen backbone's output for row {row} is not finite once stored as "
            f"{features.dtype} (DATA.CACHE_DTYPE); try DATA.CACHE_DTYPE float32, or check the backbone weights"
        )
    return features


def cached_features(key: str, folder: str, dtype: torch.dtype, compute, expected_shape=None) -> torch.Tensor:
    """The features named ``key``: from this process's memory, from ``folder`` (memory-mapped), or computed.

    With a folder and several processes, rank 0 computes and writes the file; the others map it. A file found
    damaged (checked against ``expected_shape()``, dtype and finiteness) is computed again, with a warning.
    """
    if key in _MEMORY:
        logger.info("feature cache %s: reused from memory", key)
        return _MEMORY[key]
    if not folder:
        _MEMORY[key] = _computed(key, compute)
        logger.info("feature cache %s: computed, %.1f MiB in memory", key, _MEMORY[key].nbytes / 2**20)
        return _MEMORY[key]
    path = Path(folder) / f"{key}.npy"
    if is_main_process() and path.is_file() and expected_shape is not None:
        problem = cache_file_problem(path, dtype, expected_shape())
        if problem:
            logger.warning("feature cache file %s %s; computing it again", path, problem)
            path.unlink()
    if not path.is_file() and is_main_process():
        features = _computed(key, compute)
        _save(path, features)
        logger.info("feature cache %s: computed, %.1f MiB written to %s", key, features.nbytes / 2**20, path)
    else:
        logger.info("feature cache %s: mapped from %s", key, path)
    barrier()
    _MEMORY[key] = _load(path, dtype)
    return _MEMORY[key]


def clear_memory() -> None:
    """Drops this process's in-memory caches (tests; a long-lived process switching tasks)."""
    _MEMORY.clear()


class RowsDataset(Dataset):
    """``(image, label, row)``: the row finds the image's cached first-pass tokens."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, label = self.dataset[index]
        return image, label, index


class FeatureDataset(Dataset):
    """``(features, label)`` rows of a cache: what the linear probe's head trains on."""

    def __init__(self, features: torch.Tensor, labels: list[int]) -> None:
        if len(features) != len(labels):
            raise ValueError(f"the feature cache holds {len(features)} rows for {len(labels)} images")
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.features[index], self.labels[index]


class HeadOnly(nn.Module):
    """The task head alone, for training on cached pre-logits (what DDP wraps then)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)
