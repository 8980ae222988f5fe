"""What a user reads after training on their own folder: predictions with class names, summaries of
any runs, curves, refocusing grids."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import pytest
from datasets_on_disk import write_image_folder, write_vtab_task
from PIL import Image

from visual_classification.config import load_config
from visual_classification.engine import run_files as rf
from visual_classification.plots import best_val_epoch, plot_curves
from visual_classification.predict import main as predict_main
from visual_classification.summarize import main as summarize_main
from visual_classification.summarize import summarize
from visual_classification.train import train
from visual_classification.visualize import main as visualize_main
from visual_classification.visualize import spread_over_classes

from conftest import TINY_BACKBONE, refused

CLASSES = ("cat", "dog", "owl")


def folder_run(data, out, transfer="linear", epochs=1, **extra):
    """A run on an ImageFolder with the defaults for your own data (only size and speed set)."""
    opts = {
        "MODEL.BACKBONE": TINY_BACKBONE,
        "MODEL.TRANSFER_TYPE": transfer,
        "DATA.DATAPATH": str(data),
        "DATA.CROPSIZE": 32,
        "DATA.BATCH_SIZE": 4,
        "DATA.NUM_WORKERS": 0,
        "SOLVER.TOTAL_EPOCH": epochs,
        "OUTPUT_DIR": str(out),
        **extra,
    }
    return train(load_config("", [str(x) for kv in opts.items() for x in kv]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    data = write_image_folder(root / "pets", classes=CLASSES, per_class=4)
    shutil.rmtree(data / "val")  # a user's folder: train/ and test/ only
    folder_run(data, root / "runs" / "toast", "toast", epochs=2)
    folder_run(data, root / "runs" / "linear", "linear", epochs=2)
    return root


def test_results_record_class_names_and_preprocessing(runs):
    results = json.loads((runs / "runs/toast" / rf.RESULTS).read_text())
    assert results["classes"] == list(CLASSES)
    assert results["preprocessing"]["transform"] == "crop_eval" and results["preprocessing"]["crop"] == 32


def test_normalize_imagenet_is_what_the_run_uses_and_records(tmp_path):
    data = write_image_folder(tmp_path / "pets", classes=CLASSES, per_class=2)
    results = folder_run(data, tmp_path / "run", **{"DATA.NORMALIZE": "imagenet"})
    assert results["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_predict_writes_top_k_class_names_for_files_and_folders(runs, tmp_path):
    out = tmp_path / "preds.csv"
    one = runs / "pets/test/owl/0.png"
    predict_main(
        ["--adapter", str(runs / "runs/toast"), "--images", str(runs / "pets/test"), str(one), "--output", str(out)]
        + ["--top-k", "2", "--batch-size", "5"]
    )
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 * 4 + 1 and rows[-1]["path"] == str(one)
    assert list(rows[0]) == ["path", "class1", "score1", "class2", "score2"]
    for row in rows:
        assert {row["class1"], row["class2"]} <= set(CLASSES) and row["class1"] != row["class2"]
        assert 1.0 >= float(row["score1"]) >= float(row["score2"]) >= 0.0


def test_predict_skips_an_unreadable_image_names_it_and_writes_the_rest(runs, tmp_path, caplog):
    folder = tmp_path / "photos"
    shutil.copytree(runs / "pets/test", folder)
    (folder / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n not really")
    out = tmp_path / "preds.csv"
    with caplog.at_level(logging.WARNING):
        predict_main(["--adapter", str(runs / "runs/linear"), "--images", str(folder), "--output", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 * 4 and all("broken" not in row["path"] for row in rows)
    skipped = list(csv.DictReader((tmp_path / "preds.skipped.csv").open()))
    assert [row["path"] for row in skipped] == [str(folder / "dog" / "broken.png")]
    assert "cannot read image" in skipped[0]["error"] and "broken.png" in caplog.text
    (folder / "dog" / "broken.png").unlink()  # a re-run without the bad file drops the stale list
    predict_main(["--adapter", str(runs / "runs/linear"), "--images", str(folder), "--output", str(out)])
    assert not (tmp_path / "preds.skipped.csv").exists()


def test_predict_stops_when_no_image_can_be_read(runs, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"nothing")
    with refused(capsys, r"none of the 1 image\(s\) could be read"):
        predict_main(
            [
                "--adapter",
                str(runs / "runs/linear"),
                "--images",
                str(tmp_path / "bad.png"),
                "--output",
                str(tmp_path / "p.csv"),
            ]
        )


def test_predict_names_a_missing_path(runs, tmp_path, capsys):
    with refused(capsys, "nowhere.png is neither an image file nor a folder"):
        predict_main(["--adapter", str(runs / "runs/linear"), "--images", str(tmp_path / "nowhere.png")])


def test_summarize_reads_plain_train_runs_with_numeric_columns(runs):
    markdown, rows, _ = summarize(runs / "runs")
    assert "| pets | " in markdown and "± 0.0" not in markdown and "(n=1)" in markdown
    assert rows[0] == ["task", "method", "mean", "std", "n"]
    by_method = {r[1]: r for r in rows[1:] if r[0] == "pets"}
    assert set(by_method) == {"linear", "toast"}
    assert isinstance(by_method["toast"][2], float) and by_method["toast"][3] == "" and by_method["toast"][4] == 1
    summarize_main([str(runs / "runs")])
    written = list(csv.reader((runs / "runs/summary.csv").open()))
    assert written[0] == ["task", "method", "mean", "std", "n"]
    assert float(written[1][2]) == pytest.approx(by_method[written[1][1]][2])


def test_summarize_groups_seeds_and_gives_std(tmp_path):
    for seed, top1 in ((1, 50.0), (2, 70.0)):
        run = tmp_path / f"anywhere/run{seed}"
        run.mkdir(parents=True)
        (run / rf.RESULTS).write_text(json.dumps({"task": "mine", "transfer_type": "lora", "final_test_top1": top1}))
        (run / rf.CONFIG).write_text(f"SEED: {seed}\n")
    markdown, rows, _ = summarize(tmp_path)
    assert "60.0 ± 14.1 (n=2)" in markdown
    assert rows[1] == ["mine", "lora", 60.0, pytest.approx(14.1421, abs=1e-3), 2]


def test_visualize_labels_passes_and_classes_and_spreads_images(runs, capsys):
    visualize_main(["--adapter", str(runs / "runs/toast"), "--count", "3", "--compare", str(runs / "runs/linear")])
    printed = capsys.readouterr().out
    assert [f"true class: {c}" in printed for c in CLASSES] == [True] * 3  # one image of each class
    assert Image.open(runs / "runs/toast/visualize/image_2.png").size[0] > 0


def test_spread_over_classes_takes_each_class_in_turn():
    samples = [(f"a{i}", 0) for i in range(5)] + [("b0", 1), ("c0", 2), ("c1", 2)]
    assert [label for _, label in spread_over_classes(samples, 5)] == [0, 1, 2, 0, 2]


def test_curves_mark_the_best_epoch_on_whole_epoch_ticks(tmp_path):
    records = [
        {"epoch": e, "train_loss": 1.0 / (e + 1), "lr": 0.01, "val": {"top1": v}, "test": {"top1": v}}
        for e, v in enumerate([10.0, 40.0, 40.0, 30.0], start=1)  # metrics.jsonl counts epochs from 1
    ]
    (tmp_path / rf.METRICS).write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / rf.CONFIG).write_text("SOLVER:\n  HEAD_LR_MULT: 100.0\n")
    assert best_val_epoch(records) == 2  # the first of the tied best, 1-based
    import matplotlib.pyplot as plt

    captured = {}
    real_close = plt.close
    plt.close = lambda fig: captured.setdefault("fig", fig)
    try:
        plot_curves(tmp_path / rf.METRICS, tmp_path / rf.CURVES)
    finally:
        plt.close = real_close
    axes = captured["fig"].axes
    ticks = axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)
    assert all(any(line.get_label() == "best val (epoch 2)" for line in ax.get_lines()) for ax in axes)
    assert [line.get_label() for line in axes[2].get_lines()][:2] == ["BASE_LR × schedule", "head (× 100)"]
    real_close(captured["fig"])


def test_train_console_shows_the_overrides_not_the_whole_config(tmp_path, capsys):
    write_vtab_task(tmp_path / "data")
    out = tmp_path / "run"
    opts = ["MODEL.BACKBONE", TINY_BACKBONE, "MODEL.TRANSFER_TYPE", "linear", "DATA.DATAPATH", str(tmp_path / "data")]
    opts += ["DATA.NAME", "toy", "DATA.NUMBER_CLASSES", "3", "DATA.CROPSIZE", "32", "DATA.NUM_WORKERS", "0"]
    opts += ["SOLVER.TOTAL_EPOCH", "1", "OUTPUT_DIR", str(out)]
    train(load_config("", opts))
    printed = capsys.readouterr().out
    assert f"config: full in {out / rf.CONFIG}" in printed and "  SOLVER.TOTAL_EPOCH: 1" in printed
    assert "LORA" not in printed  # untouched sections stay out of the console
