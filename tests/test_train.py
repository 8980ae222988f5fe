"""The training entry point end to end on tiny data: files written, resuming, refusing, DDP."""

from __future__ import annotations

import json
import os

import pytest
import torch
from datasets_on_disk import write_vtab_task

from visual_classification.config import load_config
from visual_classification.engine import run_files as rf
from visual_classification.engine.trainer import Trainer
from visual_classification.train import main, train

from conftest import TINY_BACKBONE, refused


def run_opts(data_root, out, transfer="linear", epochs=2, **extra):
    opts = {
        "MODEL.BACKBONE": TINY_BACKBONE,
        "MODEL.TRANSFER_TYPE": transfer,
        "MODEL.DROP_PATH_RATE": 0.1,
        "DATA.DATAPATH": str(data_root),
        "DATA.NAME": "toy",
        "DATA.NUMBER_CLASSES": 3,
        "DATA.CROPSIZE": 32,
        "DATA.BATCH_SIZE": 4,
        "DATA.NUM_WORKERS": 0,
        "SOLVER.TOTAL_EPOCH": epochs,
        "SOLVER.WARMUP_EPOCH": 1,
        "SOLVER.BASE_LR": 0.05,
        "SOLVER.OPTIMIZER": "sgd",  # the recipe these tests were written for (the defaults moved to AdamW)
        "SOLVER.HEAD_LR_MULT": 1.0,
        "MODEL.HEAD_INIT": "original",
        "OUTPUT_DIR": str(out),
        "SEED": 3,
    }
    opts.update(extra)
    return [str(x) for kv in opts.items() for x in kv]


@pytest.fixture
def toy(tmp_path):
    write_vtab_task(tmp_path / "data")
    return tmp_path / "data"


@pytest.mark.parametrize("transfer", ["linear", "toast"])
def test_run_writes_every_file(toy, tmp_path, transfer):
    out = tmp_path / "run"
    results = train(load_config("", run_opts(toy, out, transfer)))
    for name in (rf.CONFIG, rf.LOG, rf.METRICS, rf.RESULTS, rf.LAST, rf.CURVES, f"{rf.BEST}/adapter.safetensors"):
        assert (out / name).is_file(), name
    history = rf.read_metrics(out)
    assert [r["epoch"] for r in history] == [1, 2]  # counted from 1, as results.json and best/ count
    assert all(0 <= r["val"]["top1"] <= 100 for r in history)
    saved = json.loads((out / rf.RESULTS).read_text())
    assert saved["best_epoch"] in (1, 2) and saved["trainable_params"] == results["trainable_params"]
    best = max(history, key=lambda r: r["val"]["top1"])  # first best on val, never on test
    tested = [r["epoch"] for r in history if r["test"]]
    assert tested == sorted({best["epoch"], 2})  # test where it is reported: the best and the last epoch
    assert saved["best_val_top1"] == best["val"]["top1"] and saved["test_top1"] == best["test"]["top1"]
    assert saved["final_test_top1"] == history[-1]["test"]["top1"]
    assert set(saved["run"]["split_sha256_16"]) == {"train800val200", "val200", "test"}
    assert "epoch 2" in (out / rf.LOG).read_text()
    from PIL import Image

    assert Image.open(out / rf.CURVES).size == (1200, 320)


def test_training_learns_the_toy_task(toy, tmp_path):
    results = train(load_config("", run_opts(toy, tmp_path / "run", "linear", epochs=4, **{"SOLVER.BASE_LR": 0.2})))
    history = rf.read_metrics(tmp_path / "run")
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert results["final_test_top1"] > 100 / 3


def kill_in_epoch_2(monkeypatch, opts: list[str]) -> None:
    """Runs ``opts`` until epoch 2 starts, as a kill would stop it (``last.pt`` holds epoch 1)."""
    real = Trainer.train_epoch

    def crash_in_epoch_2(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt("killed")
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(load_config("", opts))
    monkeypatch.setattr(Trainer, "train_epoch", real)


def test_killed_run_resumes_to_the_same_results(toy, tmp_path, monkeypatch):
    opts = run_opts(toy, tmp_path / "a", "toast", epochs=3)
    straight = train(load_config("", opts))

    interrupted = run_opts(toy, tmp_path / "b", "toast", epochs=3)
    kill_in_epoch_2(monkeypatch, interrupted)
    assert len(rf.read_metrics(tmp_path / "b")) == 1 and not (tmp_path / "b" / rf.RESULTS).exists()
    resumed = train(load_config("", interrupted))
    strip = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "epochs", "run")}  # noqa: E731
    assert strip(resumed) == strip(straight)
    timing = ("train_images_per_s", "peak_mem_mib")
    same = [[{k: v for k, v in r.items() if k not in timing} for r in rf.read_metrics(tmp_path / d)] for d in "ab"]
    assert same[0] == same[1]  # losses equal to the last bit, epoch by epoch


def test_finished_run_is_reported_and_a_different_config_refused(toy, tmp_path):
    out = tmp_path / "run"
    first = train(load_config("", run_opts(toy, out, epochs=1)))
    assert train(load_config("", run_opts(toy, out, epochs=1))) == json.loads((out / rf.RESULTS).read_text())
    assert first["test_top1"] is not None
    with pytest.raises(FileExistsError, match="holds a run with a different config.*--overwrite"):
        train(load_config("", run_opts(toy, out, epochs=2)))
    again = train(load_config("", run_opts(toy, out, epochs=2)), overwrite=True)
    assert again["epochs"] == 2


def test_config_errors_name_the_file_or_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: .*BASE_LRR"):
        load_config(str(bad), [])
    wrong_type = tmp_path / "type.yaml"
    wrong_type.write_text("DATA:\n  BATCH_SIZE: large\n")
    with pytest.raises(ValueError, match=r"type.yaml: .*BATCH_SIZE"):
        load_config(str(wrong_type), [])
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        load_config("", ["SOLVER.BASE_LR"])
    with refused(capsys, "config file .*missing.yaml does not exist"):
        main(["--config-file", str(tmp_path / "missing.yaml")])


def _ddp_worker(rank, world, opts, port):
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    train(load_config("", opts))
    torch.distributed.destroy_process_group()


def test_two_process_ddp_on_gloo(toy, tmp_path):
    out = tmp_path / "ddp"
    cache = {"MODEL.TOAST.CACHE_FIRST_PASS": True, "DATA.CACHE_DIR": str(tmp_path / "cache")}  # rank 0 writes it
    opts = run_opts(toy, out, "toast", epochs=2, DEVICE="cpu", **cache)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, opts, 29533), nprocs=2, join=True)
    results = json.loads((out / rf.RESULTS).read_text())
    assert results["epochs"] == 2 and results["test_top1"] is not None and results["final_test_top1"] is not None
    assert len(list((tmp_path / "cache").glob("first_pass-*.npy"))) == 3


def test_visualize_writes_a_grid_per_image(toy, tmp_path):
    from PIL import Image

    from visual_classification.visualize import main as visualize_main

    toast_run, linear_run = tmp_path / "toast", tmp_path / "linear"
    train(load_config("", run_opts(toy, toast_run, "toast", epochs=1)))
    train(load_config("", run_opts(toy, linear_run, "linear", epochs=1)))
    image = toy / "toy" / "images" / "test_0.png"
    visualize_main(["--adapter", str(toast_run), "--images", str(image), "--compare", str(linear_run)])
    grid = Image.open(toast_run / "visualize" / "image_0.png")
    width, height = grid.size  # 4 panels + 3 heads in a row; toast and linear rows (cropped to the drawing)
    assert 0.8 * 1.9 * (4 + 3) * 90 < width and 0.8 * 2.0 * 2 * 90 < height < 2.0 * 3 * 90


def test_pretune_lowers_the_reconstruction_loss_and_starts_tuning(tmp_path):
    from datasets_on_disk import write_image_folder

    from visual_classification.pretune import main as pretune_main

    write_image_folder(tmp_path / "source", classes=("a", "b", "c"), per_class=8)
    out = tmp_path / "pre"
    pretune_main(
        [
            "MODEL.BACKBONE",
            TINY_BACKBONE,
            "DATA.DATAPATH",
            str(tmp_path / "source"),
            "DATA.CROPSIZE",
            "32",
            "DATA.BATCH_SIZE",
            "8",
            "DATA.NUM_WORKERS",
            "0",
            "DATA.TEST_SPLIT",
            "none",
            "MODEL.DROP_PATH_RATE",
            "0.0",
            "SOLVER.OPTIMIZER",
            "adamw",
            "SOLVER.BASE_LR",
            "0.003",
            "SOLVER.WEIGHT_DECAY",
            "0.0",
            "SOLVER.TOTAL_EPOCH",
            "6",
            "SOLVER.WARMUP_EPOCH",
            "0",
            "OUTPUT_DIR",
            str(out),
            "SEED",
            "1",
        ]
    )
    recon = [r["recon_loss"] for r in rf.read_metrics(out)]
    assert recon[-1] < 0.8 * recon[0]  # A_i learn to invert their layers
    from safetensors.torch import load_file

    pre = load_file(str(out / rf.BEST / "adapter.safetensors"))
    from visual_classification.models.build import build_model

    tuned = build_model(
        load_config("", run_opts(tmp_path, tmp_path / "t", "toast", **{"MODEL.TOPDOWN_WEIGHTS": str(out / rf.BEST)}))
    )
    assert torch.equal(tuned.top_down.decoders[2].down.weight, pre["top_down.decoders.2.down.weight"])
