"""The datasets the VTAB-1k and FGVC protocols name: folder names, class counts, groups."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VtabTask:
    name: str  # folder name in the common prepared release
    num_classes: int
    group: str  # Natural | Specialized | Structured
    original: str  # the original code's DATA.NAME (after "vtab-")


VTAB_TASKS: dict[str, VtabTask] = {
    t.name: t
    for t in [
        VtabTask("cifar", 100, "Natural", "cifar(num_classes=100)"),
        VtabTask("caltech101", 102, "Natural", "caltech101"),
        VtabTask("dtd", 47, "Natural", "dtd"),
        VtabTask("oxford_flowers102", 102, "Natural", "oxford_flowers102"),
        VtabTask("oxford_iiit_pet", 37, "Natural", "oxford_iiit_pet"),
        VtabTask("svhn", 10, "Natural", "svhn"),
        VtabTask("sun397", 397, "Natural", "sun397"),
        VtabTask("patch_camelyon", 2, "Specialized", "patch_camelyon"),
        VtabTask("eurosat", 10, "Specialized", "eurosat"),
        VtabTask("resisc45", 45, "Specialized", "resisc45"),
        VtabTask("diabetic_retinopathy", 5, "Specialized", 'diabetic_retinopathy(config="btgraham-300")'),
        VtabTask("clevr_count", 8, "Structured", 'clevr(task="count_all")'),
        VtabTask("clevr_dist", 6, "Structured", 'clevr(task="closest_object_distance")'),
        VtabTask("dmlab", 6, "Structured", "dmlab"),
        VtabTask("kitti", 4, "Structured", 'kitti(task="closest_vehicle_distance")'),
        VtabTask("dsprites_loc", 16, "Structured", 'dsprites(predicted_attribute="label_x_position",num_classes=16)'),
        VtabTask("dsprites_ori", 16, "Structured", 'dsprites(predicted_attribute="label_orientation",num_classes=16)'),
        VtabTask("smallnorb_azi", 18, "Structured", 'smallnorb(predicted_attribute="label_azimuth")'),
        VtabTask("smallnorb_ele", 9, "Structured", 'smallnorb(predicted_attribute="label_elevation")'),
    ]
}
VTAB_GROUPS = ("Natural", "Specialized", "Structured")
_ORIGINAL_NAMES = {t.original.replace(" ", ""): t.name for t in VTAB_TASKS.values()}


@dataclass(frozen=True)
class FgvcDataset:
    name: str
    num_classes: int
    image_dir: str  # where the json paths are relative to, inside DATA.DATAPATH
    toast_lr: float  # the original README's TOAST learning rate (batch 32, SGD)
    weight_decay: float  # the original yaml's weight decay


FGVC_DATASETS: dict[str, FgvcDataset] = {
    d.name: d
    for d in [
        FgvcDataset("CUB", 200, "images", 0.03, 5e-4),
        FgvcDataset("nabirds", 555, "images", 0.01, 0.01),
        FgvcDataset("OxfordFlowers", 102, "", 0.01, 1e-4),
        FgvcDataset("StanfordDogs", 120, "Images", 0.02, 1e-4),
        FgvcDataset("StanfordCars", 196, "", 0.02, 1e-4),
    ]
}


def vtab_task_name(name: str) -> str | None:
    """The folder name for ``name``: a folder name itself, or the original's ``vtab-<registry string>``."""
    bare = name[len("vtab-") :] if name.startswith("vtab-") else name
    if bare in VTAB_TASKS:
        return bare
    return _ORIGINAL_NAMES.get(bare.replace(" ", "").replace("'", '"'))
