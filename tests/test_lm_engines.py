"""Engine settings checked before a run starts, and counts taken at the whole size of partitioned tensors."""

from __future__ import annotations

import json

import pytest
import torch

from language_generation.config import load_config
from language_generation.distributed import GATHER_KEY, check_engine_config
from language_generation.methods import TRANSFER_METHODS
from toast.summary import parameter_summary


def _cfg(tmp_path, transfer: str, zero: dict | None = None, fsdp: dict | None = None):
    opts = ["MODEL.TRANSFER_TYPE", transfer, "MODEL.NAME_OR_PATH", "m", "OUTPUT_DIR", str(tmp_path / "run")]
    if zero is not None:
        (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": zero}))
        opts += ["TRAIN.DEEPSPEED", str(tmp_path / "ds.json")]
    if fsdp is not None:
        (tmp_path / "fsdp.json").write_text(json.dumps(fsdp))
        opts += ["TRAIN.FSDP", "full_shard auto_wrap", "TRAIN.FSDP_CONFIG", str(tmp_path / "fsdp.json")]
    return load_config("", opts)


SAVED_BY_TRAINER = sorted(name for name, m in TRANSFER_METHODS.items() if m.own_tensors is None)
SAVES_OWN_TENSORS = sorted(name for name, m in TRANSFER_METHODS.items() if m.own_tensors is not None)


@pytest.mark.parametrize("transfer", SAVED_BY_TRAINER)
def test_a_zero3_config_that_cannot_save_the_model_is_refused_naming_the_key(tmp_path, transfer):
    with pytest.raises(ValueError, match=GATHER_KEY):
        check_engine_config(_cfg(tmp_path, transfer, zero={"stage": 3}))
    check_engine_config(_cfg(tmp_path, transfer, zero={"stage": 3, GATHER_KEY.split(".")[-1]: True}))
    check_engine_config(_cfg(tmp_path, transfer, zero={"stage": 2}))


@pytest.mark.parametrize("transfer", SAVES_OWN_TENSORS)
def test_a_method_that_saves_its_own_tensors_runs_under_any_zero3_or_fsdp_setting(tmp_path, transfer):
    check_engine_config(_cfg(tmp_path, transfer, zero={"stage": 3}))
    check_engine_config(_cfg(tmp_path, transfer, fsdp={"state_dict_type": "SHARDED_STATE_DICT"}))


def test_fsdp1_is_refused_for_toast_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match='"version": 2'):
        check_engine_config(_cfg(tmp_path, "toast", fsdp={"version": 1}))
    check_engine_config(_cfg(tmp_path, "toast", fsdp={"version": 2}))


def test_a_sharded_fsdp_state_dict_is_refused_for_lora(tmp_path):
    with pytest.raises(ValueError, match="state_dict_type"):
        check_engine_config(_cfg(tmp_path, "lora", fsdp={"state_dict_type": "SHARDED_STATE_DICT"}))


def test_a_base64_deepspeed_config_is_read_as_accelerate_reads_it(tmp_path):
    import base64

    encoded = base64.urlsafe_b64encode(json.dumps({"zero_optimization": {"stage": 3}}).encode()).decode()
    cfg = load_config("", ["MODEL.TRANSFER_TYPE", "lora", "TRAIN.DEEPSPEED", encoded])
    with pytest.raises(ValueError, match=GATHER_KEY):
        check_engine_config(cfg)


def test_a_missing_engine_file_is_named(tmp_path):
    cfg = load_config("", ["MODEL.TRANSFER_TYPE", "lora", "TRAIN.DEEPSPEED", str(tmp_path / "nope.json")])
    with pytest.raises(FileNotFoundError, match="TRAIN.DEEPSPEED"):
        check_engine_config(cfg)


def test_train_refuses_before_anything_is_loaded(tmp_path):
    from language_generation.train import train

    with pytest.raises(ValueError, match=GATHER_KEY):
        train(_cfg(tmp_path, "lora", zero={"stage": 3}))  # MODEL.NAME_OR_PATH "m" would fail if it got there
    assert not (tmp_path / "run").exists()


def test_counts_use_the_whole_size_of_zero3_partitions():
    model = torch.nn.Linear(4, 3)
    model.weight.requires_grad_(False)
    for p in model.parameters():  # ZeRO-3 leaves an empty shard in the tensor and the size in ds_numel
        p.ds_numel = p.numel()
        p.data = torch.empty(0)
    summary = parameter_summary(model)
    assert (summary.trainable, summary.total) == (3, 15)
