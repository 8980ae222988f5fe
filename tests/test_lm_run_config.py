"""A run's config.yaml outlives a transformers upgrade: project keys whole, ``TRAIN.*`` only where it differs
from transformers' defaults, and a file with a field this version lacks (or without one it has) still
resumes and generates."""

from __future__ import annotations

import logging

import pytest
import torch
import yaml
from safetensors.torch import save_file

from language_generation import run_files as rf
from language_generation.config import load_config, read_run_config, run_config_text
from language_generation.trained_run import run_config

OPTS = ["MODEL.NAME_OR_PATH", "m", "TRAIN.MAX_STEPS", "7", "TRAIN.LEARNING_RATE", "0.01"]


def test_config_yaml_holds_the_project_keys_and_only_the_train_values_that_differ(tmp_path):
    cfg = load_config("", [*OPTS, "OUTPUT_DIR", str(tmp_path)])
    saved = yaml.safe_load(run_config_text(cfg))
    assert saved["MODEL"] == yaml.safe_load(cfg.dump())["MODEL"] and saved["DATA"]["BLOCK_SIZE"] == 512
    assert saved["TRAIN"]["MAX_STEPS"] == 7 and saved["TRAIN"]["LEARNING_RATE"] == 0.01
    assert saved["TRAIN"]["REMOVE_UNUSED_COLUMNS"] is False  # the project's own choice, not transformers' default
    assert "ADAM_BETA1" not in saved["TRAIN"] and len(saved["TRAIN"]) < 15 < len(cfg.TRAIN)
    assert read_run_config_from_text(tmp_path, run_config_text(cfg)).dump() == cfg.dump()
    library_value = load_config("", [*OPTS, "OUTPUT_DIR", str(tmp_path), "TRAIN.REMOVE_UNUSED_COLUMNS", "True"])
    assert (
        yaml.safe_load(run_config_text(library_value))["TRAIN"]["REMOVE_UNUSED_COLUMNS"] is True
    )  # not the project's
    assert read_run_config_from_text(tmp_path, run_config_text(library_value)).dump() == library_value.dump()


def read_run_config_from_text(tmp_path, text: str):
    path = tmp_path / "written.yaml"
    path.write_text(text)
    return read_run_config(path)


def _older_transformers_config(tmp_path, cfg) -> None:
    """config.yaml as another transformers wrote it: every field, one this version lacks, one it lacks."""
    content = yaml.safe_load(cfg.dump())
    content["TRAIN"]["FIELD_OF_ANOTHER_VERSION"] = 3
    del content["TRAIN"]["ADAM_BETA1"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(content))


def test_a_run_written_by_another_transformers_resumes(tmp_path, caplog):
    cfg = load_config("", [*OPTS, "OUTPUT_DIR", str(tmp_path)])
    _older_transformers_config(tmp_path, cfg)
    (tmp_path / "checkpoint-4").mkdir()  # it trained (a folder that trained nothing is taken over)
    with caplog.at_level(logging.WARNING):
        assert rf.check_output_dir(tmp_path, run_config_text(cfg), overwrite=False) == "resume"
    assert "TRAIN.FIELD_OF_ANOTHER_VERSION" in caplog.text
    other = load_config("", [*OPTS, "OUTPUT_DIR", str(tmp_path), "TRAIN.MAX_STEPS", "8"])
    with pytest.raises(FileExistsError, match="different config"):  # a different value is still another run
        rf.check_output_dir(tmp_path, run_config_text(other), overwrite=False)


def test_a_run_written_by_another_transformers_generates(tmp_path):
    cfg = load_config("", [*OPTS, "OUTPUT_DIR", str(tmp_path)])
    _older_transformers_config(tmp_path, cfg)
    save_file({"top_down.prompt": torch.zeros(2)}, str(tmp_path / "adapter.safetensors"))
    loaded = run_config(tmp_path, "", ["GENERATE.TEMPERATURE", "0"])
    assert loaded.TRAIN.MAX_STEPS == 7 and loaded.TRAIN.ADAM_BETA1 == cfg.TRAIN.ADAM_BETA1
    assert loaded.GENERATE.TEMPERATURE == 0.0
