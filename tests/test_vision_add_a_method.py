"""A transfer method is one file and one registration: a method defined here, outside the package, runs through
every vision command (train, resume after a kill, predict, tune, summarize); every built-in method trains,
resumes and predicts the same way."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from datasets_on_disk import write_vtab_task
from test_train import kill_in_epoch_2, run_opts
from torch import nn

from runkit.ranges import Range
from toast.registry import ConfigKey
from visual_classification.config import load_config
from visual_classification.engine import run_files as rf
from visual_classification.models import TRANSFER_METHODS, TransferMethod, register_transfer
from visual_classification.models.transfer_model import TransferModel
from visual_classification.predict import main as predict_main
from visual_classification.summarize import summarize
from visual_classification.train import train
from visual_classification.tune import main as tune_main

# -- the new method: a learned per-channel scale on every block's attention values -------------------------------


def _build_value_scale(backbone: nn.Module, head: nn.Module, cfg, backbone_name: str) -> TransferModel:
    model = TransferModel(backbone, head, backbone_name=backbone_name, transfer_type="value-scale")
    width = backbone.embed_dim
    init = cfg.MODEL.VALUE_SCALE.INIT
    model.value_scale = nn.ParameterList(nn.Parameter(torch.full((width,), init)) for _ in backbone.blocks)

    def scale_values(scale: nn.Parameter):
        def hook(module, inputs, qkv: torch.Tensor) -> torch.Tensor:  # qkv: B×N×3C, the values last
            return torch.cat([qkv[..., : 2 * width], qkv[..., 2 * width :] * scale], dim=-1)

        return hook

    for block, scale in zip(backbone.blocks, model.value_scale):
        block.attn.qkv.register_forward_hook(scale_values(scale))
    return model


def _is_value_scale(name: str) -> bool:
    return name.startswith("value_scale.")


VALUE_SCALE = TransferMethod(
    name="value-scale",
    build=_build_value_scale,
    trains=_is_value_scale,
    added=_is_value_scale,
    config_keys=(
        ConfigKey(
            "MODEL.VALUE_SCALE.INIT",
            1.0,
            "the scale every value channel starts at (1: the backbone as pretrained)",
            Range("MODEL.VALUE_SCALE.INIT", low=0.0, low_open=True),
        ),
    ),
    lr_grid=(0.5, 0.1),
    table_order=35,  # between prompt and lora
    description="a learned per-channel scale on the attention values",
)


@pytest.fixture
def value_scale():
    register_transfer(VALUE_SCALE)
    yield VALUE_SCALE
    TRANSFER_METHODS.unregister(VALUE_SCALE.name)


@pytest.fixture
def toy(tmp_path):
    write_vtab_task(tmp_path / "data")
    return tmp_path / "data"


def strip(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in ("seconds", "epochs", "run")}


def train_resume_predict(toy: Path, tmp_path: Path, monkeypatch, transfer: str) -> dict:
    """Trains ``transfer``, trains it again killed in epoch 2 and resumed (same results), then predicts from the
    run folder; returns the results."""
    straight = train(load_config("", run_opts(toy, tmp_path / "straight", transfer, epochs=2)))
    killed = run_opts(toy, tmp_path / "killed", transfer, epochs=2)
    kill_in_epoch_2(monkeypatch, killed)
    assert len(rf.read_metrics(tmp_path / "killed")) == 1
    assert strip(train(load_config("", killed))) == strip(straight)
    assert straight["transfer_type"] == transfer

    predictions = tmp_path / "predictions.csv"
    predict_main(
        ["--adapter", str(tmp_path / "killed"), "--images", str(toy / "toy" / "images"), "--output", str(predictions)]
    )
    rows = list(csv.reader(predictions.open()))
    assert len(rows) == 1 + 24 and all(row[1] in ("0", "1", "2") for row in rows[1:])
    return straight


@pytest.mark.parametrize("transfer", sorted(TRANSFER_METHODS))
def test_every_registered_method_trains_resumes_and_predicts(toy, tmp_path, monkeypatch, transfer):
    results = train_resume_predict(toy, tmp_path, monkeypatch, transfer)
    assert 0 < results["trainable_params"] <= results["total_params"]


def test_a_method_registered_outside_the_package_runs_through_every_command(
    value_scale, toy, tmp_path, monkeypatch, capsys
):
    # its config key, default and range
    assert load_config("", []).MODEL.VALUE_SCALE.INIT == 1.0
    with pytest.raises(ValueError, match=r"MODEL.VALUE_SCALE.INIT=0.0 must be > 0"):
        load_config("", ["MODEL.VALUE_SCALE.INIT", "0.0"])

    # train, resume after a kill, predict
    results = train_resume_predict(toy, tmp_path / "one", monkeypatch, "value-scale")
    blocks, width = 12, 192
    head = width * 3 + 3
    assert results["trainable_params"] == blocks * width + head
    saved = (tmp_path / "one" / "straight" / rf.BEST / "adapter.safetensors").read_bytes()
    assert b"value_scale.11" in saved and b"backbone." not in saved  # the adapter holds the scales, not the backbone
    scales = torch.load(tmp_path / "one" / "straight" / rf.LAST, weights_only=True)["adapter"]
    assert any(not torch.equal(t, torch.ones(width)) for n, t in scales.items() if n.startswith("value_scale."))

    # tune on its own lr grid, then summarize next to a linear probe
    write_vtab_task(tmp_path / "vtab", name="dtd", classes=3)
    opts = [
        *run_opts(tmp_path / "vtab", tmp_path / "tuned", "value-scale", epochs=1),
        "DATA.NAME",
        "dtd",
        "DATA.NUMBER_CLASSES",
        "47",
    ]
    tune_main(["--wds=0", "--seeds=1", *opts])
    assert sorted(p.name for p in (tmp_path / "tuned/val/dtd/value-scale").iterdir()) == [
        "lr0.0015625_wd0",
        "lr0.0078125_wd0",
    ]  # the registration's grid, × batch 4 / 256
    assert '"test_top1": [' in capsys.readouterr().out
    tune_main(["--fixed", "--seeds=1", *opts, "MODEL.TRANSFER_TYPE", "linear"])  # the last value of a key wins
    markdown, rows, _bars = summarize(tmp_path / "tuned")
    assert [row[:2] for row in rows[1:3]] == [["dtd", "linear"], ["dtd", "value-scale"]]  # table_order 10, then 35
    assert "| task | linear | value-scale |" in markdown


def test_an_unregistered_method_is_gone_from_the_config(value_scale):
    TRANSFER_METHODS.unregister(value_scale.name)
    try:
        with pytest.raises(ValueError, match="MODEL.TRANSFER_TYPE='value-scale' is unknown"):
            load_config("", ["MODEL.TRANSFER_TYPE", "value-scale"])
        assert "VALUE_SCALE" not in load_config("", []).MODEL
    finally:
        register_transfer(value_scale)
