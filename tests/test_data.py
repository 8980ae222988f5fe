"""Data layouts, label maps and the errors bad data gets."""

from __future__ import annotations

import json

import pytest
import torch
from datasets_on_disk import write_fgvc, write_image_folder, write_vtab_task

from visual_classification.config import get_cfg
from visual_classification.data import VTAB_GROUPS, VTAB_TASKS, build_task_data, vtab_task_name

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def data_cfg(root, name="toy", classes=3, **overrides):
    cfg = get_cfg()
    cfg.DATA.DATAPATH = str(root)
    cfg.DATA.NAME = name
    cfg.DATA.NUMBER_CLASSES = classes
    cfg.DATA.CROPSIZE = 32
    for key, value in overrides.items():
        setattr(cfg.DATA, key, value)
    return cfg


def test_vtab_registry_has_the_19_tasks_in_three_groups():
    assert len(VTAB_TASKS) == 19
    assert {t.group for t in VTAB_TASKS.values()} == set(VTAB_GROUPS)
    assert [sum(t.group == g for t in VTAB_TASKS.values()) for g in VTAB_GROUPS] == [7, 4, 8]
    assert vtab_task_name('vtab-clevr(task="count_all")') == "clevr_count"
    assert vtab_task_name("vtab-cifar(num_classes=100)") == "cifar"
    assert vtab_task_name("sun397") == "sun397" and vtab_task_name("mine") is None


def test_vtab_layout_reads_splits_resized_and_normalised(tmp_path):
    write_vtab_task(tmp_path)
    data = build_task_data(data_cfg(tmp_path, CACHE_IMAGES=True), MEAN, STD)
    assert data.layout == "vtab" and data.num_classes == 3
    assert (len(data.train), len(data.val), len(data.test)) == (18, 6, 6)  # train800val200 by default
    image, label = data.train[4]
    assert image.shape == (3, 32, 32) and label == 1
    assert -1.0 <= image.min() and image.max() <= 1.0
    assert set(data.split_files) == {"train800val200", "val200", "test"}


def test_registered_task_needs_no_class_count(tmp_path):
    write_vtab_task(tmp_path, name="dtd")
    data = build_task_data(data_cfg(tmp_path, name="dtd", classes=-1), MEAN, STD)
    assert data.num_classes == 47


def test_unregistered_task_without_class_count_is_an_error(tmp_path):
    write_vtab_task(tmp_path)
    with pytest.raises(ValueError, match="not a registered task; set DATA.NUMBER_CLASSES"):
        build_task_data(data_cfg(tmp_path, classes=-1), MEAN, STD)


def test_fgvc_uses_one_label_map_for_all_splits(tmp_path):
    write_fgvc(tmp_path)
    data = build_task_data(data_cfg(tmp_path, name="", classes=3), MEAN, STD)
    assert data.layout == "fgvc"
    # val holds only the first two classes: a per-split map would still give 0, 1; test must give 0..2
    assert sorted(set(data.val.labels)) == [0, 1] and sorted(set(data.test.labels)) == [0, 1, 2]
    assert data.train[0][0].shape == (3, 32, 32)


def test_image_folder_layout(tmp_path):
    write_image_folder(tmp_path / "pets")
    data = build_task_data(data_cfg(tmp_path, name="pets", classes=-1), MEAN, STD)
    assert data.layout == "imagefolder" and data.num_classes == 2 and len(data.train) == 6


@pytest.mark.parametrize(
    ("damage", "error", "pattern"),
    [
        ("no_root", FileNotFoundError, r"DATA.DATAPATH='.*nowhere' is not a folder"),
        ("no_split", FileNotFoundError, r"split file .*val200.txt is missing; a VTAB-1k task folder holds"),
        ("bad_line", ValueError, r"test.txt:3: expected 'relative/path label'"),
        ("bad_label", ValueError, r"val200.txt:2: label 7 is outside \[0, 3\)"),
        ("missing_image", FileNotFoundError, r"1 image\(s\) listed in .*train800val200.txt do not exist"),
    ],
)
def test_bad_data_is_named(tmp_path, damage, error, pattern):
    task = write_vtab_task(tmp_path)
    cfg = data_cfg(tmp_path)
    if damage == "no_root":
        cfg.DATA.DATAPATH = str(tmp_path / "nowhere")
    elif damage == "no_split":
        (task / "val200.txt").unlink()
    elif damage == "bad_line":
        lines = (task / "test.txt").read_text().splitlines()
        lines[2] = "images/test_2.png"
        (task / "test.txt").write_text("\n".join(lines))
    elif damage == "bad_label":
        lines = (task / "val200.txt").read_text().splitlines()
        lines[1] = lines[1].rsplit(" ", 1)[0] + " 7"
        (task / "val200.txt").write_text("\n".join(lines))
    else:
        (task / "images" / "train800_3.png").unlink()
    with pytest.raises(error, match=pattern):
        build_task_data(cfg, MEAN, STD)


def test_unreadable_image_names_its_path(tmp_path):
    task = write_vtab_task(tmp_path)
    (task / "images" / "test_0.png").write_bytes(b"not an image")
    data = build_task_data(data_cfg(tmp_path, VERIFY_IMAGES=False), MEAN, STD)  # read lazily
    with pytest.raises(OSError, match=r"cannot read image .*test_0.png"):
        data.test[0]


def test_unknown_layout_lists_what_was_expected(tmp_path):
    (tmp_path / "toy").mkdir()
    with pytest.raises(FileNotFoundError, match="VTAB-1k split files.*FGVC json splits.*ImageFolder"):
        build_task_data(data_cfg(tmp_path), MEAN, STD)


def test_fgvc_class_count_must_match(tmp_path):
    write_fgvc(tmp_path)
    json.loads((tmp_path / "train.json").read_text())
    with pytest.raises(ValueError, match="has 3 classes, DATA.NUMBER_CLASSES is 5"):
        build_task_data(data_cfg(tmp_path, name="", classes=5), MEAN, STD)


def test_prepare_vtab_split_and_label_rules_without_tensorflow():
    import numpy as np

    from visual_classification.data import prepare_vtab as pv

    assert set(pv.RECIPES) == set(VTAB_TASKS)
    assert pv.split_plan("cifar") == {
        "train800": ("train[:800]", 800),
        "val200": ("train[45000:]", 200),
        "test": ("test", None),
    }
    assert pv.split_plan("eurosat")["test"] == ("train[80%:]", None)
    assert pv.split_plan("smallnorb_ele")["val200"] == ("test", 200)
    assert pv.clevr_count({"objects": {"size": [0] * 5}}) == 2
    coords = np.array([[0, 0, 9.2], [0, 0, 12.0]])
    assert pv.clevr_distance({"objects": {"pixel_coords": coords}}) == 3  # 9 < 9.2 <= 9.5
    kitti = {"objects": {"location": np.array([[0, 0, 25.0], [0, 0, 5.0]]), "type": np.array([1, 4])}}
    assert pv.kitti_distance(kitti) == 2  # the type-4 object at 5 m is not a vehicle
    assert pv.kitti_distance({"objects": {"location": np.zeros((0, 3)), "type": np.array([])}}) == 3
    assert pv.RECIPES["dsprites_loc"].label({"label_x_position": 31}) == 15
    assert pv.RECIPES["dsprites_ori"].label({"label_orientation": 39}) == 15
    assert pv.RECIPES["dsprites_ori"].label({"label_orientation": 3}) == 1


@pytest.mark.parametrize("crop", [32, 224, 384])
def test_evaluation_transforms_give_the_pixels_the_hand_written_ones_gave(crop):
    """timm's create_transform replaced torchvision steps written here: same uint8 pixels, bit for bit."""
    import numpy as np
    from PIL import Image
    from torchvision import transforms as T

    from visual_classification.data.transforms import pixel_transform, resize_for_crop

    before = {
        "resize": T.Compose([T.Resize((crop, crop), antialias=True), T.PILToTensor()]),
        "crop_eval": T.Compose([T.Resize(resize_for_crop(crop), antialias=True), T.CenterCrop(crop), T.PILToTensor()]),
    }
    rng = np.random.default_rng(0)
    for width, height in [(50, 37), (500, 333), (crop, crop), (17, 90)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for mode, reference in before.items():
            pixels = pixel_transform(mode, crop)(image)
            assert pixels.dtype == torch.uint8 and pixels.shape == (3, crop, crop)
            assert torch.equal(pixels, reference(image)), (mode, width, height)


def test_augment_false_trains_with_the_evaluation_transform(tmp_path):
    """An ImageFolder trains with random crops and flips; DATA.AUGMENT False gives training the eval transform."""
    root = write_image_folder(tmp_path / "pets", classes=("cat", "dog"))
    cfg = get_cfg()
    cfg.DATA.DATAPATH, cfg.DATA.CROPSIZE = str(root), 32
    from visual_classification.data.datasets import build_task_data
    from visual_classification.data.transforms import Normalize

    mean = std = (0.5, 0.5, 0.5)
    augmented = build_task_data(cfg, mean, std).train.pixels
    assert any(type(step).__name__.startswith("Random") for step in augmented.transforms)
    cfg.DATA.AUGMENT = False
    plain = build_task_data(cfg, mean, std)
    assert not any(type(step).__name__.startswith("Random") for step in plain.train.pixels.transforms)
    assert torch.equal(plain.train[0][0], plain.train[0][0]) and isinstance(plain.train.normalize, Normalize)
