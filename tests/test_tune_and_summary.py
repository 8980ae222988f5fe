"""The tuning protocol (grid → selection → seeded final runs) and the summary table, on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets_on_disk import write_vtab_task

from visual_classification.config import load_config
from visual_classification.models import TRANSFER_METHODS
from visual_classification.summarize import main as summarize_main
from visual_classification.summarize import summarize
from visual_classification.tune import select, tune

from conftest import TINY_BACKBONE, refused

REPO = Path(__file__).resolve().parents[1]


def test_selection_prefers_score_then_smaller_lr():
    assert select({(0.1, 0.0): 50.0, (0.01, 0.0): 60.0}) == (0.01, 0.0)
    assert select({(0.1, 0.0): 60.0, (0.01, 0.001): 60.0}) == (0.01, 0.001)
    assert TRANSFER_METHODS["toast"].lr_grid[0] == 1.0 and len(TRANSFER_METHODS["prompt"].lr_grid) == 10
    assert TRANSFER_METHODS.canonical("topdown") == "toast" and TRANSFER_METHODS.canonical("finetune") == "end2end"


def test_tune_runs_the_grid_then_seeded_finals_and_resumes(tmp_path, capsys):
    write_vtab_task(tmp_path / "data", name="dtd", classes=3)
    opts = [
        "MODEL.BACKBONE",
        TINY_BACKBONE,
        "MODEL.TRANSFER_TYPE",
        "linear",
        "DATA.DATAPATH",
        str(tmp_path / "data"),
        "DATA.NAME",
        "dtd",
        "DATA.NUMBER_CLASSES",
        "47",
        "DATA.CROPSIZE",
        "32",
        "DATA.BATCH_SIZE",
        "8",
        "DATA.NUM_WORKERS",
        "0",
        "SOLVER.TOTAL_EPOCH",
        "1",
        "SOLVER.WARMUP_EPOCH",
        "0",
        "OUTPUT_DIR",
        str(tmp_path / "out"),
        "MODEL.PRETRAINED",
        "False",
    ]
    cfg = load_config(str(REPO / "configs/vtab/dtd.yaml"), opts)
    result = tune(cfg, lrs=[0.5, 0.1], wds=[0.0], seeds=[1, 2])
    val_runs = sorted(p.name for p in (tmp_path / "out/val/dtd/linear").iterdir())
    assert val_runs == ["lr0.003125_wd0", "lr0.015625_wd0"]  # lr × 8/256
    tuned = json.loads(
        (tmp_path / "out/val/dtd/linear/lr0.015625_wd0/config.yaml").parent.joinpath("results.json").read_text()
    )
    assert tuned["final_test_top1"] is None  # tuning never looks at test
    selected = json.loads((tmp_path / "out/final/dtd/linear/selected.json").read_text())
    assert (selected["lr"], selected["wd"]) == (result["lr"], result["wd"])
    assert len(result["final"]) == 2 and all(r["final_test_top1"] is not None for r in result["final"])
    capsys.readouterr()
    tune(cfg, lrs=[0.5, 0.1], wds=[0.0], seeds=[1, 2])  # everything finished: nothing is retrained
    assert capsys.readouterr().out.count("already holds a finished run") == 4

    markdown, rows, bars = summarize(tmp_path / "out")
    assert set(bars) == {"Natural", "all tasks"} and set(bars["Natural"]) == {"linear"}
    assert rows[0] == ["task", "method", "mean", "std", "n"] and rows[1][:2] == ["dtd", "linear"] and rows[1][4] == 2
    assert "| dtd | " in markdown and "(n=2)" in markdown
    assert "Natural mean (1 tasks)" in markdown and "mean over 1 tasks" in markdown
    summarize_main([str(tmp_path / "out")])
    assert (tmp_path / "out/summary.csv").read_text().startswith("task,method,mean,std,n\ndtd,linear,")
    from PIL import Image

    assert Image.open(tmp_path / "out/summary.png").size[0] >= 500


def test_summary_needs_finished_runs(tmp_path, capsys):
    with refused(capsys, "no finished runs under .*: no results.json with 'final_test_top1' set"):
        summarize_main([str(tmp_path)])


VISION_CONFIGS = [
    p for folder in ("vtab", "fgvc", "demo", "custom") for p in (REPO / "configs" / folder).glob("*.yaml")
]


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in VISION_CONFIGS))
def test_every_shipped_config_loads(path):
    cfg = load_config(str(REPO / path), [])
    if "/vtab/" in path and not path.endswith("base.yaml"):
        assert cfg.DATA.NAME == Path(path).stem and cfg.DATA.NUMBER_CLASSES > 0 and cfg.SOLVER.TOTAL_EPOCH == 100
    if "/fgvc/" in path and not path.endswith("base.yaml"):
        assert cfg.DATA.FORMAT == "fgvc" and cfg.SOLVER.BASE_LR in (0.03, 0.01, 0.02)


@pytest.mark.parametrize(
    "script", ["train_vtab.sh", "train_fgvc.sh", "gpu_check.sh", "pretune_vit.sh", "own_data_defaults.sh"]
)
def test_scripts_print_usage(script):
    import subprocess

    out = subprocess.run(["bash", str(REPO / "scripts" / script), "-h"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("usage:")


def test_train_vtab_names_an_unknown_task(tmp_path):
    import os
    import subprocess

    env = {**os.environ, "VTAB_ROOT": str(tmp_path)}
    out = subprocess.run(
        ["bash", str(REPO / "scripts/train_vtab.sh"), "not_a_task"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert out.returncode == 2 and "unknown task 'not_a_task': no configs/vtab/not_a_task.yaml" in out.stderr
