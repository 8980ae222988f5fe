"""Vision reliability: faults a new user or a shared machine produces, each reproduced on tiny data.

A diverged grid point, inputs changed behind the same path (same size, mtime restored), caches keyed by
content, damaged cache files, predict's --output and damaged run files, out-of-range keys, a full disk; every
vision CLI's one-line answer to a user's mistake; no network asked for by a folder being read; splits that
repeat training images, one-class tasks, image formats left out, EXIF orientation, Unicode class folders; the
converged probe as the own-data default for linear.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from datasets_on_disk import write_image_folder, write_vtab_task
from PIL import Image
from safetensors.torch import save_file
from test_train import kill_in_epoch_2

from runkit.cli import UserError
from runkit.files import atomic_write_text
from visual_classification.config import RANGES, load_config
from visual_classification.data import build_task_data, task_num_classes
from visual_classification.engine import feature_cache as fc
from visual_classification.engine import run_files as rf
from visual_classification.engine import run_inputs as ri
from visual_classification.engine.frozen_prefix import cache_strategy
from visual_classification.models.build import build_model
from visual_classification.predict import main as predict_main
from visual_classification.train import resolve_optimizer, train
from visual_classification.tune import tune

from conftest import TINY_BACKBONE, refused

REPO = Path(__file__).resolve().parents[1]
SMALL = {"train800": 6, "val200": 3, "test": 3}


def opts(data, out, transfer="linear", epochs=1, **extra) -> list[str]:
    values = {
        "MODEL.BACKBONE": TINY_BACKBONE,
        "MODEL.TRANSFER_TYPE": transfer,
        "MODEL.DROP_PATH_RATE": 0.0,
        "DATA.DATAPATH": str(data),
        "DATA.NAME": "toy",
        "DATA.NUMBER_CLASSES": 3,
        "DATA.CROPSIZE": 32,
        "DATA.BATCH_SIZE": 3,
        "DATA.NUM_WORKERS": 0,
        "SOLVER.TOTAL_EPOCH": epochs,
        "SOLVER.WARMUP_EPOCH": 0,
        "SOLVER.OPTIMIZER": "sgd",
        "SOLVER.BASE_LR": 0.05,
        "OUTPUT_DIR": str(out),
        "SEED": 3,
        **extra,
    }
    return [str(x) for kv in values.items() for x in kv]


def write_weights(path: Path, seed: int) -> Path:
    """A tiny ViT's weights file; another seed gives a file of the same size with other values."""
    torch.manual_seed(seed)
    save_file(timm.create_model(TINY_BACKBONE).state_dict(), str(path))
    return path


def rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """Replaces the file's bytes in place with as many others and restores its mtime (``cp -p``, ``rsync -t``)."""
    st = path.stat()
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns


def replace_weights(path: Path, seed: int, tmp: Path) -> None:
    other = write_weights(tmp / f"other{seed}.safetensors", seed)
    rewrite_keeping_size_and_mtime(path, other.read_bytes())


@pytest.fixture
def toy(tmp_path):
    write_vtab_task(tmp_path / "data", per_split=SMALL)
    return tmp_path / "data"


# -- class 2: one diverging grid point ---------------------------------------------------------------------
def test_tune_scores_a_diverged_grid_point_as_failed_and_goes_on_also_when_re_run(tmp_path, capsys):
    write_vtab_task(tmp_path / "data", name="dtd", per_split=SMALL)
    base = opts(tmp_path / "data", tmp_path / "out", **{"DATA.NAME": "dtd", "DATA.NUMBER_CLASSES": 47})
    cfg = load_config(
        str(REPO / "configs/vtab/dtd.yaml"),
        [*base, "DATA.BATCH_SIZE", "2", "SOLVER.WARMUP_EPOCH", "0", "MODEL.PRETRAINED", "False"],
    )
    # weight decay times a huge lr overflows the head's weights within the epoch: the loss becomes NaN
    result = tune(cfg, lrs=[0.5, 1e33], wds=[1e-3], seeds=[1])
    printed = capsys.readouterr().out
    assert "lr 7.8125e+30 wd 0.001: diverged (scored as failed)" in printed
    selected = json.loads((tmp_path / "out/final/dtd/linear/selected.json").read_text())
    assert (selected["lr"], result["lr"]) == (0.00390625, 0.00390625)  # the finite point wins
    failed = [g for g in selected["grid"] if g["val_top1"] is None]
    assert len(failed) == 1 and "loss became nan" in failed[0]["diverged"]
    assert result["final"][0]["final_test_top1"] is not None  # the final runs ran
    assert (tmp_path / "out/val/dtd/linear/lr7.8125e+30_wd0.001" / rf.DIVERGED).is_file()

    tune(cfg, lrs=[0.5, 1e33], wds=[1e-3], seeds=[1])  # a re-run: the diverged point answers from its record
    again = capsys.readouterr().out
    assert "diverged (scored as failed)" in again and again.count("already holds a finished run") == 2
    assert "selected lr 0.00390625" in again


def test_train_vtab_sh_goes_on_after_a_failed_task_and_exits_non_zero(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls.txt"
    (fake / "python").write_text(  # stands in for tune (fails on one task) and summarize
        f'#!/usr/bin/env bash\necho "$*" >> {calls}\n[[ "$*" == *configs/vtab/cifar.yaml* ]] && exit 1\nexit 0\n'
    )
    (fake / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "VTAB_ROOT": str(tmp_path), "OUTPUT_DIR": "x"}
    done = subprocess.run(
        ["bash", "scripts/train_vtab.sh", "cifar", "dtd"], cwd=REPO, env=env, capture_output=True, text=True
    )
    lines = calls.read_text().splitlines()
    assert done.returncode == 1 and "failed tasks: cifar" in done.stderr
    assert "configs/vtab/dtd.yaml" in lines[1] and "visual_classification.summarize" in lines[2]


# -- class 3: inputs changed behind the same path ----------------------------------------------------------
def test_resume_on_a_backbone_file_changed_by_content_is_refused_naming_it(toy, tmp_path, monkeypatch):
    weights = write_weights(tmp_path / "backbone.safetensors", seed=0)
    run = opts(toy, tmp_path / "run", epochs=2, **{"MODEL.MODEL_ROOT": weights})
    kill_in_epoch_2(monkeypatch, run)
    assert (tmp_path / "run" / rf.LAST).is_file()
    replace_weights(weights, seed=1, tmp=tmp_path)
    with pytest.raises(ri.InputsChanged, match=f"started run .*MODEL.MODEL_ROOT \\({weights}\\).*--overwrite"):
        train(load_config("", run))
    assert train(load_config("", run), overwrite=True)["epochs"] == 2  # started again on the new file


def test_finished_run_whose_labels_changed_is_not_reported_as_finished(toy, tmp_path):
    run = opts(toy, tmp_path / "run")
    train(load_config("", run))
    split = toy / "toy" / "test.txt"
    text = split.read_text()
    swapped = text.replace(" 0\n", " X\n").replace(" 1\n", " 0\n").replace(" X\n", " 1\n")
    assert swapped != text
    rewrite_keeping_size_and_mtime(split, swapped.encode())
    with pytest.raises(ri.InputsChanged, match=f"finished run .*split test \\({split}\\)"):
        train(load_config("", run))


def test_top_down_weights_folder_changed_is_named_by_file(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter.safetensors").write_bytes(b"a" * 64)
    cfg = load_config("", ["MODEL.TOPDOWN_WEIGHTS", str(folder), "OUTPUT_DIR", str(tmp_path / "run")])
    ri.write_inputs(tmp_path, ri.weights_inputs(cfg))
    rewrite_keeping_size_and_mtime(folder / "adapter.safetensors", b"b" * 64)
    with pytest.raises(ri.InputsChanged, match="MODEL.TOPDOWN_WEIGHTS/adapter.safetensors"):
        ri.check_unchanged(tmp_path, ri.weights_inputs(cfg), "started")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished linear run on a local weights file: (root, run folder, weights file)."""
    root = tmp_path_factory.mktemp("finished")
    write_vtab_task(root / "data", per_split=SMALL)
    weights = write_weights(root / "backbone.safetensors", seed=0)
    train(load_config("", opts(root / "data", root / "run", **{"MODEL.MODEL_ROOT": weights})))
    return root, root / "run", weights


def copy_run(run: Path, dest: Path, weights: Path | None = None) -> Path:
    """A copy of the run folder (its config pointing at ``weights`` when given)."""
    shutil.copytree(run, dest)
    if weights is not None:
        config = dest / rf.CONFIG
        config.write_text(config.read_text().replace(str(run.parent / "backbone.safetensors"), str(weights)))
        inputs = json.loads((dest / ri.INPUTS).read_text())
        inputs["MODEL.MODEL_ROOT"]["path"] = str(weights)
        (dest / ri.INPUTS).write_text(json.dumps(inputs))
    return dest


def test_predict_refuses_a_backbone_changed_by_content(finished, tmp_path, capsys):
    root, run, weights = finished
    copied = shutil.copy2(weights, tmp_path / "backbone.safetensors")
    copy = copy_run(run, tmp_path / "run", Path(copied))
    image = str(root / "data/toy/images/test_0.png")
    predict_main(["--adapter", str(copy), "--images", image, "--output", str(tmp_path / "ok.csv")])
    assert (tmp_path / "ok.csv").is_file()  # a byte-identical copy elsewhere is the same backbone
    replace_weights(Path(copied), seed=1, tmp=tmp_path)
    with refused(capsys, f"changed by content .*MODEL.MODEL_ROOT \\({copied}\\)"):
        predict_main(["--adapter", str(copy), "--images", image, "--output", str(tmp_path / "p.csv")])


# -- class 8: predict checks --output first ----------------------------------------------------------------
@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_predict_checks_output_before_any_work(finished, tmp_path, monkeypatch, where, capsys):
    root, run, _ = finished
    (tmp_path / "a_file").write_text("x")
    output = tmp_path if where == "folder" else tmp_path / "a_file" / "sub" / "p.csv"
    monkeypatch.setattr(
        "visual_classification.predict.load_trained_run", lambda *a: pytest.fail("loaded the run first")
    )
    expected = "is a folder" if where == "folder" else "a_file is a file, not a folder"
    with refused(capsys, expected):
        predict_main(["--adapter", str(run), "--images", str(root / "data"), "--output", str(output)])


# -- class 13: damaged run files name the file -------------------------------------------------------------
def test_predict_names_a_results_json_that_is_not_json(finished, tmp_path, capsys):
    root, run, _ = finished
    copy = copy_run(run, tmp_path / "run")
    (copy / rf.RESULTS).write_text('{"classes": [\n')
    with refused(capsys, f"{copy / rf.RESULTS} is not valid JSON"):
        predict_main(["--adapter", str(copy), "--images", str(root / "data"), "--output", str(tmp_path / "p.csv")])


def test_predict_names_an_adapter_config_without_num_classes(finished, tmp_path, capsys):
    root, run, _ = finished
    copy = copy_run(run, tmp_path / "run")
    config = copy / rf.BEST / "adapter_config.json"
    saved = json.loads(config.read_text())
    del saved["num_classes"]
    config.write_text(json.dumps(saved))
    with refused(capsys, f"{config} lacks the key 'num_classes'"):
        predict_main(["--adapter", str(copy), "--images", str(root / "data"), "--output", str(tmp_path / "p.csv")])


# -- classes 4 and 7: caches keyed by content; damaged cache files --------------------------------------------
def cache_setup(toy, tmp_path, transfer):
    kind = {"linear": "DATA.CACHE_FEATURES", "toast": "MODEL.TOAST.CACHE_FIRST_PASS"}[transfer]
    cfg = load_config("", opts(toy, tmp_path / "run", transfer, **{kind: True, "DATA.CACHE_DIR": tmp_path / "c"}))
    torch.manual_seed(0)
    model = build_model(cfg)
    data = build_task_data(cfg, (0.5,) * 3, (0.5,) * 3)
    compute = fc.CacheComputation(
        model, cache_strategy(cfg), torch.float16, 3, 0, torch.device("cpu"), torch.autocast("cpu", enabled=False)
    )
    fc.clear_memory()
    return lambda: fc.cached_splits(data, cfg, compute, autocast_on=False)


def save_uncompressed(path: Path, colour: tuple[int, int, int]) -> None:
    """A PNG whose size depends only on its dimensions (stored, not deflated): a same-size rewrite."""
    Image.new("RGB", (20, 20), colour).save(path, compress_level=0)


@pytest.mark.parametrize("transfer", ["linear", "toast"])
def test_cache_misses_after_an_image_is_rewritten_with_the_same_size_and_mtime(toy, tmp_path, transfer):
    image = toy / "toy" / "images" / "test_0.png"
    save_uncompressed(image, (220, 30, 30))
    caches = cache_setup(toy, tmp_path, transfer)
    first = caches()["test"].clone()
    assert len(list((tmp_path / "c").glob("*.npy"))) == 3
    fc.clear_memory()  # as a new process
    other = tmp_path / "other.png"
    save_uncompressed(other, (30, 30, 220))
    rewrite_keeping_size_and_mtime(image, other.read_bytes())
    second = caches()["test"]
    assert len(list((tmp_path / "c").glob("*.npy"))) == 4  # a new key for the test split
    assert not torch.equal(first[0], second[0]) and torch.equal(first[1:], second[1:])


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _wrong_width(path: Path) -> None:
    np.save(path, np.zeros((3, 7), dtype=np.float16))


def _nan_row(path: Path) -> None:
    array = np.load(path)
    array[1] = np.nan
    np.save(path, array)


@pytest.mark.parametrize(
    "damage, said",
    [(_truncate, "cannot be read"), (_wrong_width, r"shape \(3, 7\), expected float16 of shape \(3, 192\)"),
     (_nan_row, "non-finite values .* in row 1")],
)  # fmt: skip
def test_damaged_cache_file_is_computed_again_with_a_warning_naming_it(toy, tmp_path, caplog, damage, said):
    caches = cache_setup(toy, tmp_path, "linear")
    good = caches()["test"].clone()
    fc.clear_memory()
    files = sorted((tmp_path / "c").glob("*.npy"))
    test_file = next(f for f in files if torch.equal(torch.from_numpy(np.load(f)), good))  # val has 3 others
    damage(test_file)
    with caplog.at_level(logging.WARNING):
        again = caches()["test"]
    assert torch.equal(again, good)
    assert any(str(test_file) in r.message and "computing it again" in r.message for r in caplog.records)
    assert re.search(said, caplog.text)


# -- class 12: out-of-range keys ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, allowed",
    [("SOLVER.HEAD_LR_MULT", "-100", ">= 0"), ("SOLVER.WEIGHT_DECAY", "-0.1", ">= 0"),
     ("SOLVER.WARMUP_EPOCH", "-1.0", ">= 0"), ("MODEL.DROP_PATH_RATE", "2.0", r"in \[0, 1\)"),
     ("MODEL.DROP_PATH_RATE", "1.0", r"in \[0, 1\)"), ("SOLVER.BASE_LR", "-0.01", ">= 0"),
     ("SOLVER.MOMENTUM", "1.5", r"in \[0, 1\)"), ("MODEL.LORA.RANK", "0", ">= 1")],
)  # fmt: skip
def test_out_of_range_keys_are_refused_at_config_time(key, value, allowed):
    with pytest.raises(ValueError, match=rf"{key}=\S+ must be {allowed}"):
        load_config("", [key, value])


def test_a_non_finite_value_from_yaml_is_refused(tmp_path):
    config = tmp_path / "nan.yaml"
    config.write_text("SOLVER:\n  BASE_LR: .nan\n")
    with pytest.raises(ValueError, match="SOLVER.BASE_LR=nan must be >= 0"):
        load_config(str(config), [])


def test_the_defaults_are_in_range():
    load_config("", [])
    assert {r.key for r in RANGES} >= {"SOLVER.HEAD_LR_MULT", "SOLVER.WEIGHT_DECAY", "MODEL.DROP_PATH_RATE"}


# -- class 14: a full disk ---------------------------------------------------------------------------------
def test_a_checkpoint_write_on_a_full_disk_names_the_file_and_the_cause(tmp_path, monkeypatch):
    target = tmp_path / rf.LAST
    rf.save_checkpoint(target, {"epoch": 1})

    def full_disk(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0 basic_ios::clear")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=f"writing {target} failed: most likely the disk .* full .* MiB free"):
        rf.save_checkpoint(target, {"epoch": 2})
    monkeypatch.undo()
    assert rf.load_checkpoint(target)["epoch"] == 1  # the previous checkpoint is intact
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_text_write_failing_with_enospc_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / rf.RESULTS

    def no_space(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", no_space)
    with pytest.raises(OSError, match=f"writing {target} failed: the disk .*full") as err:
        atomic_write_text(target, "{}")
    assert err.value.errno == errno.ENOSPC

    def other(self, *a, **k):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "write_text", other)
    with pytest.raises(PermissionError):  # any other failure is raised as it is
        atomic_write_text(target, "{}")


# -- one rule for every CLI: a user's mistake is one error: line and exit status 2 ------------------------
def damage_header(path: Path) -> None:
    """A safetensors file whose header length points past the end of the file (a copy cut short, say)."""
    path.write_bytes((10**9).to_bytes(8, "little") + b"{}")


def adapter_copy(run: Path, dest: Path, **config) -> Path:
    """A copy of the run's best/ folder, its adapter config changed by ``config``."""
    shutil.copytree(run / rf.BEST, dest)
    saved = json.loads((dest / "adapter_config.json").read_text())
    (dest / "adapter_config.json").write_text(json.dumps({**saved, **config}))
    return dest


def _cli_mistakes(finished, tmp_path, monkeypatch):
    """(entry point, argv, text the error line must hold) for every vision CLI, each given a user's mistake."""
    from visual_classification.data.prepare_vtab import main as prepare_main
    from visual_classification.demo.__main__ import main as demo_main
    from visual_classification.demo.image_folder import main as image_folder_main
    from visual_classification.pretune import main as pretune_main
    from visual_classification.summarize import main as summarize_main
    from visual_classification.train import main as train_main
    from visual_classification.tune import main as tune_main
    from visual_classification.visualize import main as visualize_main

    root, run, weights = finished
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    base = opts(root / "data", a_file / "run", **{"MODEL.MODEL_ROOT": weights})
    damaged = copy_run(run, tmp_path / "damaged")
    damage_header(damaged / rf.BEST / "adapter.safetensors")
    other = adapter_copy(run, tmp_path / "other", backbone="vit_small_patch16_224")
    init = adapter_copy(run, tmp_path / "init", transfer_type="bias")
    damage_header(init / "adapter.safetensors")
    killed = copy_run(run, tmp_path / "killed")
    (killed / rf.RESULTS).unlink()
    (killed / rf.LAST).write_bytes(b"not a checkpoint")
    (killed / rf.CONFIG).write_text((killed / rf.CONFIG).read_text().replace(str(run), str(killed)))
    partial = copy_run(run, tmp_path / "partial")
    (partial / rf.RESULTS).unlink()
    torch.save({"epoch": 1}, partial / rf.LAST)  # a torch file, but not a whole checkpoint
    (partial / rf.CONFIG).write_text((partial / rf.CONFIG).read_text().replace(str(run), str(partial)))
    monkeypatch.setitem(__import__("sys").modules, "tensorflow_datasets", None)  # not installed
    good = opts(root / "data", tmp_path / "run", **{"MODEL.MODEL_ROOT": weights})
    image = str(root / "data/toy/images/test_0.png")
    return {
        "train, OUTPUT_DIR under a file": (train_main, base, "a_file"),
        "train, resume from an unreadable checkpoint": (
            train_main,
            [*opts(root / "data", killed, **{"MODEL.MODEL_ROOT": weights})],
            f"cannot resume from {killed / rf.LAST}",
        ),
        "train, resume from a checkpoint that lacks a key": (
            train_main,
            opts(root / "data", partial, **{"MODEL.MODEL_ROOT": weights}),
            f"cannot resume from {partial / rf.LAST}: it lacks 'adapter'",
        ),
        "train, another backbone's top-down path": (
            train_main,
            [*good, "MODEL.TRANSFER_TYPE", "toast", "MODEL.TOPDOWN_WEIGHTS", str(other)],
            "was trained on backbone 'vit_small_patch16_224'",
        ),
        "train, INIT_FROM with a damaged header": (
            train_main,
            [*good, "MODEL.TRANSFER_TYPE", "bias", "MODEL.INIT_FROM", str(init)],
            f"{init / 'adapter.safetensors'} is not a readable safetensors file",
        ),
        "tune, OUTPUT_DIR under a file": (tune_main, ["--seeds", "1", "--fixed", *base], "a_file"),
        "pretune, a method pre-tuning does not train": (pretune_main, good, "pre-tuning trains"),
        "predict, a damaged adapter header": (
            predict_main,
            ["--adapter", str(damaged), "--images", image, "--output", str(tmp_path / "p.csv")],
            f"{damaged / rf.BEST / 'adapter.safetensors'} is not a readable safetensors file",
        ),
        "predict, --top-k 0": (
            predict_main,
            ["--adapter", str(run), "--images", image, "--top-k", "0"],
            "--top-k 0",
        ),
        "visualize, a damaged adapter header": (
            visualize_main,
            ["--adapter", str(damaged), "--images", image],
            "is not a readable safetensors file",
        ),
        "visualize, an image that is not there": (
            visualize_main,
            ["--adapter", str(run), "--images", str(tmp_path / "nowhere.jpg")],
            "nowhere.jpg",
        ),
        "summarize, a folder without runs": (summarize_main, [str(tmp_path / "none")], "no finished runs"),
        "demo, an override out of range": (
            demo_main,
            ["--out", str(tmp_path / "demo"), "SOLVER.BASE_LR", "-1"],
            "SOLVER.BASE_LR",
        ),
        "demo.image_folder, a file where the folder goes": (image_folder_main, [str(a_file)], "a_file"),
        "prepare_vtab, without tensorflow-datasets": (
            prepare_main,
            ["--tfds-dir", str(tmp_path), "--out", str(tmp_path / "vtab")],
            "pip install tensorflow",
        ),
    }


CLI_MISTAKES = [  # the keys of _cli_mistakes
    "train, OUTPUT_DIR under a file",
    "train, resume from an unreadable checkpoint",
    "train, resume from a checkpoint that lacks a key",
    "train, another backbone's top-down path",
    "train, INIT_FROM with a damaged header",
    "tune, OUTPUT_DIR under a file",
    "pretune, a method pre-tuning does not train",
    "predict, a damaged adapter header",
    "predict, --top-k 0",
    "visualize, a damaged adapter header",
    "visualize, an image that is not there",
    "summarize, a folder without runs",
    "demo, an override out of range",
    "demo.image_folder, a file where the folder goes",
    "prepare_vtab, without tensorflow-datasets",
]


def assert_one_error_line(call, argv: list[str], said: str, capsys) -> None:
    for handler in [h for h in logging.getLogger().handlers if getattr(h, "_toast_run", False)]:
        logging.getLogger().removeHandler(handler)  # an earlier run's console handler writes to a closed capture
    with pytest.raises(SystemExit) as stop:
        call(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    last = err.rstrip("\n").split("\n")[-1].split("\r")[-1]  # after a progress bar's last frame, if any
    assert "Traceback" not in err and err.count("error: ") == 1 and last.startswith("error: "), err
    assert said in err


@pytest.mark.parametrize("mistake", CLI_MISTAKES)
def test_every_vision_cli_answers_a_users_mistake_with_one_error_line(
    finished, tmp_path, monkeypatch, capsys, mistake
):
    table = _cli_mistakes(finished, tmp_path, monkeypatch)
    assert sorted(table) == sorted(CLI_MISTAKES)  # every case runs
    call, argv, said = table[mistake]
    assert_one_error_line(call, argv, said, capsys)


def test_a_full_disk_during_a_checkpoint_write_is_one_error_line_naming_the_cause(
    finished, tmp_path, monkeypatch, capsys
):
    from visual_classification.train import main as train_main

    root, _, weights = finished

    def full_disk(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 4416 vs 4312")

    monkeypatch.setattr(torch, "save", full_disk)
    run = opts(root / "data", tmp_path / "run", **{"MODEL.MODEL_ROOT": weights})
    assert_one_error_line(train_main, run, "most likely the disk (or quota) is full", capsys)


def test_a_safetensors_write_on_a_full_disk_names_the_file_and_the_cause(tmp_path):
    from runkit.files import atomic_path

    target = tmp_path / "best" / "adapter.safetensors"
    rust = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
    with pytest.raises(OSError, match=f"writing {target} failed: most likely the disk"), atomic_path(target):
        raise Exception(rust)  # (safetensors' own error type derives from Exception)


def test_train_vtab_sh_names_an_unknown_task_and_the_close_name(tmp_path):
    env = {
        **os.environ,
        "VTAB_ROOT": str(tmp_path),
        "PATH": f"{Path(__import__('sys').executable).parent}:{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "scripts/train_vtab.sh", "DTD", "SEED", "1"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "unknown task 'DTD'" in done.stderr and "did you mean: dtd?" in done.stderr
    assert "===" not in done.stdout  # no task was launched


# -- silent wrong or meaningless results from an image folder -----------------------------------------------
def folder_cfg(root: Path, **extra) -> list[str]:
    values = {"DATA.DATAPATH": str(root), "DATA.FORMAT": "imagefolder", "DATA.CROPSIZE": 32, **extra}
    return [str(x) for kv in values.items() for x in kv]


def read_folder(root: Path, **extra):
    return build_task_data(load_config("", folder_cfg(root, **extra)), (0.0,) * 3, (1.0,) * 3)


@pytest.mark.parametrize("split", ["test", "val"])
def test_an_evaluation_split_repeating_training_images_by_content_is_refused_unless_allowed(tmp_path, split, caplog):
    root = write_image_folder(tmp_path / "images", per_class=4)
    for image in (root / "train").rglob("*.png"):  # the same files under other names: a copy, not a protocol
        target = root / split / image.parent.name / f"copy_{image.name}"
        shutil.copy(image, target)
    with pytest.raises(
        UserError, match=f"8 of the 16 images of split '{split}' repeat .*DATA.ALLOW_SPLIT_OVERLAP True"
    ):
        read_folder(root)
    with caplog.at_level(logging.WARNING):
        read_folder(root, **{"DATA.ALLOW_SPLIT_OVERLAP": True})
    assert f"8 of the 16 images of split '{split}' repeat" in caplog.text


def test_a_few_repeated_images_are_warned_with_counts(tmp_path, caplog):
    root = write_image_folder(tmp_path / "images", per_class=30)
    shutil.copy(root / "train/cat/0.png", root / "test/cat/copy.png")
    with caplog.at_level(logging.WARNING):
        read_folder(root)
    assert "1 of the 61 images of split 'test' repeat an image of the training split 'train'" in caplog.text


def test_a_one_class_task_is_refused(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("cat",))
    with pytest.raises(UserError, match="has 1 class: a 1-way softmax .* at least two classes"):
        read_folder(root)
    with pytest.raises(UserError, match="at least two classes"):
        task_num_classes(load_config("", folder_cfg(root)))
    write_vtab_task(tmp_path / "vtab", classes=1, per_split=SMALL)  # three classes declared, one present
    with pytest.raises(UserError, match="training split 'train800val200' .* one label only"):
        build_task_data(load_config("", opts(tmp_path / "vtab", tmp_path / "run")), (0.0,) * 3, (1.0,) * 3)


def test_a_test_split_listing_the_training_files_is_refused(tmp_path):
    task = write_vtab_task(tmp_path / "vtab", per_split=SMALL)
    shutil.copy(task / "train800val200.txt", task / "test.txt")  # the same paths: no copy, still no test
    with pytest.raises(UserError, match="9 of the 9 images of split 'test' repeat"):
        build_task_data(load_config("", opts(tmp_path / "vtab", tmp_path / "run")), (0.0,) * 3, (1.0,) * 3)


def test_images_of_other_formats_are_read_and_other_files_reported_by_count_and_extension(tmp_path, caplog):
    root = write_image_folder(tmp_path / "images")
    Image.new("RGB", (20, 20), (200, 0, 0)).save(root / "train/cat/more.gif")
    Image.new("RGB", (20, 20), (200, 0, 0)).save(root / "train/cat/more.jfif", format="JPEG")
    for name in ("a.heic", "b.heic", "notes.txt"):
        (root / "train/dog" / name).write_bytes(b"x")
    with caplog.at_level(logging.WARNING):
        data = read_folder(root)
    paths = {path.name for path, _ in data.train.samples}
    assert {"more.gif", "more.jfif"} <= paths
    assert "left out 3 file(s) that are not images this project reads (2 .heic, 1 .txt)" in caplog.text


def exif_rotated_photo(path: Path) -> None:
    """A JPEG stored 40 wide and 20 high with EXIF orientation 6 (a viewer turns it 90° clockwise): stored left
    half red, right half blue, so upright it is 20 wide and 40 high, red on top."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, exif=exif, quality=95)


def test_camera_jpegs_reach_the_model_upright_in_training_predict_and_visualize(finished, tmp_path):
    from visual_classification.data import load_rgb
    from visual_classification.trained_run import load_trained_run

    exif_rotated_photo(tmp_path / "photo.jpg")
    upright = np.asarray(load_rgb(tmp_path / "photo.jpg"))
    assert upright.shape[:2] == (40, 20)  # 20 wide, 40 high, as a viewer shows it
    assert upright[2, 10, 0] > 200 and upright[-3, 10, 2] > 200  # red on top, blue below
    run = load_trained_run(finished[1])  # predict and visualize read pixels through the run
    run.preprocessing = {**run.preprocessing, "transform": "resize", "crop": 32}
    pixels = run.pixels(tmp_path / "photo.jpg")
    assert pixels[0, 2, 16] > 200 and pixels[2, -3, 16] > 200


def test_class_folders_differing_only_by_unicode_normalisation(tmp_path):
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    root = write_image_folder(tmp_path / "images", classes=(nfc, "dog"))
    (root / "val" / nfc).rename(root / "val" / nfd)  # val/ written on macOS
    data = read_folder(root)
    assert data.classes == [nfc, "dog"] and sorted(data.val.labels) == [0, 0, 0, 1, 1, 1]
    shutil.copytree(root / "train" / nfc, root / "train" / nfd)
    with pytest.raises(
        UserError, match=f"class folders '{nfd}' and '{nfc}'|'{nfc}' and '{nfd}'.*Unicode normalisation"
    ):
        read_folder(root)


# -- no network or code from a folder someone sent ----------------------------------------------------------
def run_asking_for_hub_weights(run: Path, dest: Path) -> Path:
    """A copy of the run whose config.yaml asks for timm hub weights (MODEL.PRETRAINED True, no local file)."""
    copy = copy_run(run, dest)
    config = copy / rf.CONFIG
    text = re.sub(r"(?m)^  MODEL_ROOT: .*$", "  MODEL_ROOT: ''", config.read_text())
    config.write_text(text.replace("  PRETRAINED: false", "  PRETRAINED: true"))
    return copy


def test_a_run_folder_asking_for_hub_weights_is_refused_unless_the_command_line_asks(
    finished, tmp_path, monkeypatch, capsys
):
    from visual_classification.visualize import main as visualize_main

    root, run, _ = finished
    sent = run_asking_for_hub_weights(run, tmp_path / "sent")
    monkeypatch.setattr(
        "visual_classification.trained_run.check_weights_unchanged", lambda *a: None
    )  # the recorded weights file is not used

    from visual_classification.trained_run import build_model as real_build

    def built(cfg):  # stops where the hub download would start
        if cfg.MODEL.PRETRAINED:
            raise RuntimeError("the model was built with MODEL.PRETRAINED True")
        return real_build(cfg)

    monkeypatch.setattr("visual_classification.trained_run.build_model", built)
    image = str(root / "data/toy/images/test_0.png")
    predict = ["--adapter", str(sent), "--images", image, "--output", str(tmp_path / "p.csv")]
    with refused(capsys, r"config.yaml sets MODEL.PRETRAINED True .*timm hub.*pass MODEL.PRETRAINED True"):
        predict_main(predict)
    with refused(capsys, "sets MODEL.PRETRAINED True"):
        visualize_main(["--adapter", str(sent), "--images", image])
    with refused(capsys, "sets MODEL.PRETRAINED True"):  # the run to compare with is a folder read as well
        visualize_main(["--adapter", str(run), "--images", image, "--compare", str(sent)])
    with pytest.raises(RuntimeError, match="built with MODEL.PRETRAINED True"):  # asked here: honoured
        predict_main([*predict, "--set", "MODEL.PRETRAINED", "True"])
    with pytest.raises(RuntimeError, match="built with MODEL.PRETRAINED True"):
        visualize_main(["--images", image, "--adapter", str(sent), "MODEL.PRETRAINED", "True"])


# -- a user's folder gets a converged probe by default ------------------------------------------------------
def test_linear_on_an_image_folder_is_the_converged_probe_by_default(tmp_path, caplog):
    root = write_image_folder(tmp_path / "images", per_class=4)
    common = {"MODEL.BACKBONE": TINY_BACKBONE, "MODEL.TRANSFER_TYPE": "linear", "DATA.NUM_WORKERS": 0}
    common |= {"SOLVER.TOTAL_EPOCH": 1, "DATA.BATCH_SIZE": 4}
    with caplog.at_level(logging.INFO):
        results = train(load_config("", folder_cfg(root, OUTPUT_DIR=tmp_path / "probe", **common)))
    ran = load_config(str(tmp_path / "probe" / rf.CONFIG), [])
    assert (ran.SOLVER.OPTIMIZER, ran.DATA.AUGMENT, ran.DATA.CACHE_FEATURES) == ("lbfgs", False, True)
    assert "probe L2 strength chosen on val" in caplog.text
    assert results["weight_decay"] in ran.SOLVER.PROBE_DECAYS
    # the user's choice wins; the paper protocols keep theirs
    mine = load_config("", folder_cfg(root, OUTPUT_DIR=tmp_path / "mine", **common, **{"SOLVER.OPTIMIZER": "adamw"}))
    train(mine)
    assert load_config(str(tmp_path / "mine" / rf.CONFIG), []).SOLVER.OPTIMIZER == "adamw"
    for protocol in ("configs/vtab/dtd.yaml", "configs/fgvc/cub.yaml"):
        assert load_config(str(REPO / protocol), []).SOLVER.OPTIMIZER == "sgd"
    toy = write_vtab_task(tmp_path / "vtab", per_split=SMALL)
    vtab, _ = resolve_optimizer(load_config("", opts(toy.parent, tmp_path / "v", **{"SOLVER.OPTIMIZER": "auto"})))
    assert (vtab.SOLVER.OPTIMIZER, vtab.DATA.AUGMENT) == ("adamw", True)  # not a user's own folder


def test_tune_runs_no_grid_for_the_probe_that_chooses_its_decay_on_val(tmp_path, capsys):
    root = write_image_folder(tmp_path / "images", per_class=4)
    extra = {"MODEL.BACKBONE": TINY_BACKBONE, "MODEL.TRANSFER_TYPE": "linear", "DATA.NUM_WORKERS": 0}
    cfg = load_config("", folder_cfg(root, OUTPUT_DIR=tmp_path / "out", **extra, **{"SOLVER.TOTAL_EPOCH": 1}))
    result = tune(cfg, lrs=[0.1, 0.01], wds=[1e-3, 1e-2], seeds=[1])
    assert "no lr x wd grid" in capsys.readouterr().out and not (tmp_path / "out" / "val").exists()
    assert result["final"][0]["weight_decay"] in (1e-4, 1e-3, 1e-2, 1e-1)


def test_predict_lists_every_readable_format_and_reports_the_other_files(tmp_path, caplog):
    from visual_classification.predict import image_paths

    for name in ("a.png", "b.gif", "c.tga"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "d.heic").write_bytes(b"x")
    with caplog.at_level(logging.WARNING):
        found = image_paths([str(tmp_path)])
    assert [p.name for p in found] == ["a.png", "b.gif", "c.tga"]
    assert "left out 1 file(s) that are not images this project reads (1 .heic)" in caplog.text
