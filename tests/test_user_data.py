"""Your own data: defaults that start sanely, the paper's configs unchanged, a validation share when
there is no val/, bad input named early, ConvNeXt weights, the normalisation choice."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from datasets_on_disk import write_fgvc, write_image_folder, write_vtab_task
from PIL import Image
from safetensors.torch import save_file

from visual_classification.config import changed_keys, flat, get_cfg, load_config
from visual_classification.data import build_task_data, load_rgb
from visual_classification.data.transforms import normalization
from visual_classification.engine.optim import build_optimizer
from visual_classification.models.build import build_model
from visual_classification.models.weights import load_backbone_state

from conftest import build_tiny, images, tiny_cfg

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def data_cfg(root, name="", classes=-1, **overrides):
    cfg = get_cfg()
    cfg.DATA.DATAPATH, cfg.DATA.NAME, cfg.DATA.NUMBER_CLASSES, cfg.DATA.CROPSIZE = str(root), name, classes, 32
    for key, value in overrides.items():
        setattr(cfg.DATA, key, value)
    return cfg


# -- point 1: defaults for your own data; the paper's configs pin the original's recipe ----------------------------


# The paper's recipe, key by key, as each config pins it (DATA.NUM_WORKERS -1: loader workers from the machine,
# not part of any recipe).
SNAPSHOT = json.loads((REPO / "tests/data/paper_configs.json").read_text())


@pytest.mark.parametrize("path", sorted(SNAPSHOT))
def test_paper_configs_merge_to_the_papers_recipe(path):
    """Every key of every vtab/fgvc/demo config, merged, equals the recorded recipe: the defaults for your own data
    never leak into the paper's configs."""
    merged = flat(load_config(str(REPO / path), []))
    differ = {k: (v, merged.get(k)) for k, v in SNAPSHOT[path].items() if merged.get(k) != v}
    assert not differ
    assert merged["DATA.NORMALIZE"] == "backbone"  # new keys keep the old behaviour for these configs


def test_defaults_start_sanely_for_a_few_classes():
    cfg = tiny_cfg("linear", **{"DATA.NUMBER_CLASSES": 3})
    assert (cfg.SOLVER.OPTIMIZER, cfg.MODEL.HEAD_INIT) == (
        "auto",
        "trunc_normal",
    )  # adamw, but linear's own-data probe
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        logits = model(images(8))
    assert logits.std() < 1.0  # near-uniform start (the original head init gives logits of std ~10 here)
    lrs = {round(group["lr"], 10) for group in build_optimizer(model, cfg).param_groups}
    assert lrs == {1e-2}  # the head: BASE_LR 1e-4 × HEAD_LR_MULT 100


def test_model_root_wins_over_pretrained_with_a_log_line(tmp_path, caplog):
    source = build_tiny("linear")
    path = tmp_path / "backbone.safetensors"
    save_file({k[len("backbone.") :]: v for k, v in source.state_dict().items() if k.startswith("backbone.")}, path)
    with caplog.at_level(logging.INFO):
        model = build_tiny("linear", seed=5, **{"MODEL.PRETRAINED": True, "MODEL.MODEL_ROOT": str(path)})
    assert "MODEL.MODEL_ROOT" in caplog.text and "wins over MODEL.PRETRAINED" in caplog.text
    assert torch.equal(model.backbone.cls_token, source.backbone.cls_token)  # no hub download: the file's tensors


def test_changed_keys_are_what_the_file_and_overrides_set():
    cfg = load_config(str(REPO / "configs/vtab/dtd.yaml"), ["SOLVER.TOTAL_EPOCH", "3"])
    changed = changed_keys(cfg)
    assert changed["SOLVER.TOTAL_EPOCH"] == 3 and changed["DATA.NAME"] == "dtd" and "SEED" not in changed


def test_image_folder_without_val_holds_out_a_seeded_share_per_class(tmp_path):
    write_image_folder(tmp_path, classes=("cat", "dog"), per_class=10)
    import shutil

    shutil.rmtree(tmp_path / "val")
    data = build_task_data(data_cfg(tmp_path, VAL_FRACTION=0.2), MEAN, STD)
    assert (len(data.train), len(data.val), len(data.test)) == (16, 4, 20)
    assert sorted(data.val.labels) == [0, 0, 1, 1]
    assert not {p for p, _ in data.train.samples} & {p for p, _ in data.val.samples}
    again = build_task_data(data_cfg(tmp_path, VAL_FRACTION=0.2), MEAN, STD)
    assert again.val.samples == data.val.samples  # seeded
    other = get_cfg()
    other.merge_from_other_cfg(data_cfg(tmp_path, VAL_FRACTION=0.2))
    other.SEED = 7
    assert build_task_data(other, MEAN, STD).val.samples != data.val.samples
    assert data.classes == ["cat", "dog"]


def test_missing_image_folder_splits_say_which_key_leaves_them_out(tmp_path):
    import shutil

    write_image_folder(tmp_path)
    shutil.rmtree(tmp_path / "test")
    with pytest.raises(FileNotFoundError, match=r"test is missing; .*or set DATA.TEST_SPLIT none"):
        build_task_data(data_cfg(tmp_path), MEAN, STD)
    shutil.rmtree(tmp_path / "val")
    with pytest.raises(FileNotFoundError, match=r"val is missing; .*DATA.VAL_SPLIT none \(or DATA.VAL_FRACTION > 0\)"):
        build_task_data(data_cfg(tmp_path, VAL_FRACTION=0.0, TEST_SPLIT="none"), MEAN, STD)


def test_class_names_per_layout(tmp_path):
    write_vtab_task(tmp_path / "v")
    assert build_task_data(data_cfg(tmp_path / "v", "toy", 3), MEAN, STD).classes == ["0", "1", "2"]
    write_fgvc(tmp_path / "f")
    assert build_task_data(data_cfg(tmp_path / "f", "", 3), MEAN, STD).classes == ["4", "9", "17"]


# -- point 5: bad input, named early -------------------------------------------------------------------------------


def test_sixteen_and_thirty_two_bit_images_are_scaled_not_saturated(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64)
    Image.fromarray(ramp.astype(np.uint16)).save(tmp_path / "a.png")
    Image.fromarray(ramp.astype(np.int32)).save(tmp_path / "b.tif")
    Image.fromarray((ramp / 65535).astype(np.float32)).save(tmp_path / "c.tif")
    for name in ("a.png", "b.tif", "c.tif"):
        pixels = np.asarray(load_rgb(tmp_path / name))
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
        assert abs(pixels.mean() - 127.5) < 2 and (pixels == 255).mean() < 0.01, name
    Image.fromarray((ramp * 100).astype(np.float32)).save(tmp_path / "d.tif")
    with pytest.raises(OSError, match=r"d.tif.*'F' with values in \[0.0, 6553500.0\]"):
        load_rgb(tmp_path / "d.tif")


def test_empty_and_hidden_class_folders_are_ignored_with_a_log_line(tmp_path, caplog):
    write_image_folder(tmp_path, classes=("cat", "dog"))
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "train" / ".ipynb_checkpoints" / "x.png").write_bytes((tmp_path / "train/cat/0.png").read_bytes())
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "val" / ".ipynb_checkpoints").mkdir()
    with caplog.at_level(logging.INFO):
        data = build_task_data(data_cfg(tmp_path), MEAN, STD)
    assert data.num_classes == 2 and data.classes == ["cat", "dog"]
    assert "ignoring 2 hidden or empty folder(s): .ipynb_checkpoints, empty" in caplog.text


def test_a_class_with_its_images_in_sub_folders_keeps_them_in_every_split(tmp_path, caplog):
    """``fox/batch1/*.png`` belongs to class fox (as torchvision's ImageFolder and ``predict`` list it); hidden
    files and folders inside a class (``._x.png``, ``.ipynb_checkpoints/``) stay out."""
    write_image_folder(tmp_path, classes=("cat", "dog"))
    png = (tmp_path / "train/cat/0.png").read_bytes()
    for k, split in enumerate(("train", "val", "test")):
        for i in range(2):
            (tmp_path / split / "fox" / f"batch{i}").mkdir(parents=True)
            Image.new("RGB", (8, 8), (40 * k, 100 * i, 0)).save(tmp_path / split / "fox" / f"batch{i}" / "a.png")
        (tmp_path / split / "fox" / "._junk.png").write_bytes(b"AppleDouble")
        (tmp_path / split / "cat" / ".ipynb_checkpoints").mkdir()
        (tmp_path / split / "cat" / ".ipynb_checkpoints" / "x.png").write_bytes(png)
    with caplog.at_level(logging.INFO):
        data = build_task_data(data_cfg(tmp_path), MEAN, STD)
    assert data.classes == ["cat", "dog", "fox"] and "ignoring" not in caplog.text
    for split, listed in (("train", data.train), ("val", data.val), ("test", data.test)):
        fox = [path for path, label in listed.samples if label == 2]
        assert [p.relative_to(tmp_path / split).as_posix() for p in fox] == ["fox/batch0/a.png", "fox/batch1/a.png"]
        assert not any(".ipynb_checkpoints" in str(p) or p.name.startswith(".") for p, _ in listed.samples)


def test_every_bad_image_is_listed_before_training(tmp_path):
    task = write_vtab_task(tmp_path)
    (task / "images" / "test_1.png").write_bytes(b"not an image")
    (task / "images" / "val200_2.png").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(ValueError, match=r"(?s)2 of 24 images cannot be read.*test_1.png.*val200_2.png"):
        build_task_data(data_cfg(tmp_path, "toy", 3), MEAN, STD)


def test_images_are_verified_once_per_process_until_they_change(tmp_path, monkeypatch):
    import visual_classification.data.datasets as ds

    task = write_vtab_task(tmp_path)
    opened = []
    real = ds.load_rgb
    monkeypatch.setattr(ds, "load_rgb", lambda path: opened.append(path) or real(path))
    paths = sorted((task / "images").glob("*.png"))
    ds.verify_images(paths)
    ds.verify_images(paths)
    assert len(opened) == len(paths)
    paths[0].write_bytes(b"broken")  # a changed file is opened again
    with pytest.raises(ValueError, match=r"1 of 1 images cannot be read"):
        ds.verify_images(paths)


def test_splits_too_small_for_the_process_count_are_refused(tmp_path):
    write_vtab_task(tmp_path, per_split={"train800": 6, "val200": 3, "test": 1})
    with pytest.raises(ValueError, match=r"splits too small for 2 processes \(test has 1 image"):
        build_task_data(data_cfg(tmp_path, "toy", 3), MEAN, STD, world=2)
    assert len(build_task_data(data_cfg(tmp_path, "toy", 3), MEAN, STD, world=1).test) == 1


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"images/val200_0.png 0\nimages/val200_1.png \xff\n", r"val200.txt:2: not UTF-8 text \(byte 0xff\)"),
        ("images/val200_0.png 0\nimages/val200_1.png ¹\n".encode(), r"val200.txt:2: expected 'relative/path label'"),
    ],
)
def test_odd_split_files_name_file_and_line(tmp_path, content, pattern):
    task = write_vtab_task(tmp_path)
    (task / "val200.txt").write_bytes(content)
    with pytest.raises(ValueError, match=pattern):
        build_task_data(data_cfg(tmp_path, "toy", 3), MEAN, STD)


def test_a_byte_order_mark_is_read_through(tmp_path):
    task = write_vtab_task(tmp_path)
    (task / "test.txt").write_bytes(b"\xef\xbb\xbf" + (task / "test.txt").read_bytes())
    assert len(build_task_data(data_cfg(tmp_path, "toy", 3), MEAN, STD).test) == 6


def test_fgvc_json_errors_name_the_line(tmp_path):
    write_fgvc(tmp_path)
    (tmp_path / "val.json").write_text('{\n"a.jpg": 4,\n"b.jpg" 9\n}')
    with pytest.raises(ValueError, match=r"val.json:3: not valid json"):
        build_task_data(data_cfg(tmp_path, "", 3), MEAN, STD)


@pytest.mark.parametrize(
    ("opts", "pattern"),
    [
        (["SOLVER.TOTAL_EPOCH", "0"], r"SOLVER.TOTAL_EPOCH=0 must be >= 1"),
        (["DATA.BATCH_SIZE", "0"], r"DATA.BATCH_SIZE=0 must be >= 1"),
        (["DATA.VAL_FRACTION", "1.5"], r"DATA.VAL_FRACTION=1.5 must be in \[0, 1\)"),
        (["DATA.NORMALIZE", "clip"], r"DATA.NORMALIZE must be one of \['backbone', 'imagenet', 'inception'\]"),
    ],
)
def test_config_values_are_checked(opts, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_config("", opts)


def test_crop_size_not_a_multiple_of_the_patch_is_refused_by_name():
    with pytest.raises(ValueError, match=r"DATA.CROPSIZE=40 is not a multiple of .*patch size 16; use 32 or 48"):
        build_tiny("linear", **{"DATA.CROPSIZE": 40})


# -- point 6: ConvNeXt weights keep head.norm ----------------------------------------------------------------------


def _convnext_cfg():
    return tiny_cfg("linear", **{"MODEL.BACKBONE": "convnext_atto", "MODEL.DROP_PATH_RATE": 0.0})


def _to_original_convnext_keys(state: dict) -> dict:
    """timm's ConvNeXt keys written back in the original release's layout (what timm's filter converts from)."""
    import re

    out = {}
    for key, value in state.items():
        key = key.replace("stem.", "downsample_layers.0.")
        key = re.sub(r"stages\.([0-9]+)\.downsample\.([0-9]+)", r"downsample_layers.\1.\2", key)
        key = re.sub(r"stages\.([0-9]+)\.blocks\.([0-9]+)", r"stages.\1.\2", key)
        key = key.replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv")
        key = key.replace("head.norm.", "norm.").replace("head.fc.", "head.")
        out[key] = value
    return out


@pytest.mark.parametrize("layout", ["timm", "original"])
def test_convnext_weights_load_with_only_the_classifier_dropped(tmp_path, layout, caplog):
    torch.manual_seed(1)
    source = timm.create_model("convnext_atto", num_classes=1000)
    with torch.no_grad():
        source.head.norm.weight.normal_()
    state = source.state_dict()
    if layout == "original":
        state = _to_original_convnext_keys(state)
        assert "norm.weight" in state and "head.weight" in state and "downsample_layers.1.1.weight" in state
    path = tmp_path / "convnext.safetensors"
    save_file(state, path)
    cfg = _convnext_cfg()
    cfg.MODEL.MODEL_ROOT = str(path)
    with caplog.at_level(logging.INFO):
        model = build_model(cfg)
    assert torch.equal(model.backbone.head.norm.weight, source.head.norm.weight)
    assert "dropping the checkpoint's classifier (head.fc.bias, head.fc.weight)" in caplog.text


def test_convnext_file_without_its_final_norm_is_still_refused(tmp_path):
    state = {k: v for k, v in timm.create_model("convnext_atto").state_dict().items() if not k.startswith("head.norm")}
    with pytest.raises(ValueError, match="missing keys: head.norm.bias, head.norm.weight"):
        load_backbone_state(timm.create_model("convnext_atto", num_classes=0), state, "file")


# -- point 7: DATA.NORMALIZE ---------------------------------------------------------------------------------------


def test_normalize_choices():
    backbone = "vit_base_patch16_224.augreg_in21k"
    assert normalization("backbone", "vit_small_patch14_dinov2") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert normalization("backbone", backbone) == ((0.5,) * 3, (0.5,) * 3)
    assert normalization("imagenet", backbone) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert normalization("inception", backbone) == ((0.5,) * 3, (0.5,) * 3)


def test_the_scripts_feed_the_original_release_imagenet_statistics():
    common = (REPO / "scripts/common.sh").read_text()
    assert 'MODEL.MODEL_ROOT "$MODEL_ROOT" MODEL.PRETRAINED False DATA.NORMALIZE imagenet' in common


def test_the_starter_config_writes_out_the_defaults():
    cfg = load_config(str(REPO / "configs/custom/imagefolder.yaml"), [])
    defaults = flat(get_cfg())
    for key in ("SOLVER.OPTIMIZER", "SOLVER.BASE_LR", "SOLVER.HEAD_LR_MULT", "SOLVER.WEIGHT_DECAY", "MODEL.HEAD_INIT"):
        assert flat(cfg)[key] == defaults[key], key
    assert cfg.DATA.FORMAT == "imagefolder" and cfg.MODEL.PRETRAINED
