"""Language run folders under faults: killed checkpoint writes, damaged files, changed configs; and the
config loader both halves share (``_BASE_``, ints for float keys, named errors)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from lm_helpers import refused, tiny_base  # noqa: F401
from test_lm_data import tokenizer  # noqa: F401  (fixture)
from test_lm_train import local_model, opts  # noqa: F401  (fixture)

from language_generation import run_files as rf
from language_generation.config import load_config
from language_generation.methods import TRANSFER_METHODS
from language_generation.train import main, train

REPO = Path(__file__).resolve().parents[1]


def finished_run(local_model, tmp_path, steps=4):  # noqa: F811
    folder, data = local_model
    out = tmp_path / "run"
    results = train(load_config("", opts(folder, data, out, steps)))
    assert [p.name for p in rf.checkpoint_dirs(out)] == [f"checkpoint-{n}" for n in range(steps, 0, -2)]
    return folder, data, out, results


def test_a_killed_checkpoint_write_resumes_from_the_one_before(local_model, tmp_path, caplog):  # noqa: F811
    folder, data, out, straight = finished_run(local_model, tmp_path)
    (out / "results.json").unlink()  # as if killed while checkpoint-4 was being written
    (out / "checkpoint-4" / "trainer_state.json").unlink()
    with caplog.at_level("INFO"):
        resumed = train(load_config("", opts(folder, data, out, 4)))
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["global_step"] == 4
    assert "skipping" in caplog.text and "checkpoint-4: no trainer_state.json" in caplog.text
    steps = [m["step"] for m in rf.read_metrics(out) if "loss" in m]
    assert steps == [1, 2, 3, 4]  # the interrupted stretch's lines are not doubled


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("adapter.safetensors", "cut"),
        ("optimizer.pt", "cut"),
        ("optimizer.pt", "refused"),
        ("scheduler.pt", "refused"),
        ("rng_state.pth", "refused"),
        ("optimizer.pt", "pickle"),
    ],
)
def test_a_damaged_checkpoint_file_is_named_and_skipped(local_model, tmp_path, caplog, name, damage):  # noqa: F811
    """Cut short by a kill, or a whole archive that ``torch.load`` refuses (an object outside its allowed types,
    a damaged pickle inside an intact zip): the checkpoint is skipped, naming the file, never picked and failed on."""
    import argparse
    import zipfile

    folder, data, out, _ = finished_run(local_model, tmp_path)
    (out / "results.json").unlink()
    damaged = out / "checkpoint-4" / name
    if damage == "cut":
        damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    elif damage == "refused":
        torch.save(argparse.Namespace(step=4), damaged)
    else:
        with zipfile.ZipFile(damaged) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
        with zipfile.ZipFile(damaged, "w", zipfile.ZIP_STORED) as archive:
            for member, content in members.items():
                archive.writestr(member, content[:-8] if member.endswith("data.pkl") else content)
    assert f"{damaged} is damaged" in rf.incomplete_reason(out / "checkpoint-4")
    with caplog.at_level("INFO"):
        resumed = train(load_config("", opts(folder, data, out, 4)))
    assert resumed["resumed_from"].endswith("checkpoint-2") and f"{damaged} is damaged" in caplog.text


def test_a_changed_config_is_refused_before_anything_is_overwritten(local_model, tmp_path, capsys):  # noqa: F811
    folder, data, out, _ = finished_run(local_model, tmp_path, steps=2)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    changed = [*opts(folder, data, out, 2), "TRAIN.LEARNING_RATE", "0.1", "MODEL.TOAST.TRAIN", "['prompt']"]
    with pytest.raises(FileExistsError, match="holds a run with a different config"):
        train(load_config("", changed))
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    with refused(capsys, "--overwrite"):
        main(changed)
    again = train(load_config("", changed), overwrite=True)
    assert again["resumed_from"] is None and again["trainable_params"] == 32  # p only: a new run, not a resume


def test_training_numbers_and_model_name_are_checked_before_loading(tmp_path):
    with pytest.raises(ValueError, match="TRAIN.MAX_STEPS='ten' must be an integer"):
        load_config("", ["TRAIN.MAX_STEPS", "ten"])
    cfg = load_config("", ["TRAIN.LEARNING_RATE", "1", "TRAIN.WARMUP_STEPS", "0"])
    assert cfg.TRAIN.LEARNING_RATE == 1.0 and isinstance(cfg.TRAIN.WARMUP_STEPS, float)
    with pytest.raises(ValueError, match="MODEL.NAME_OR_PATH is empty"):
        train(load_config("", ["OUTPUT_DIR", str(tmp_path / "x")]))
    assert not (tmp_path / "x").exists()


def test_int_for_float_keys_on_both_halves(tmp_path):
    from visual_classification.config import load_config as vision_config

    lm = load_config("", ["GENERATE.TEMPERATURE", "0", "MODEL.TOAST.RECON_COEF", "1"])
    assert lm.GENERATE.TEMPERATURE == 0.0 and isinstance(lm.GENERATE.TEMPERATURE, float)
    vision = vision_config("", ["SOLVER.HEAD_LR_MULT", "100", "SOLVER.BASE_LR", "1", "SOLVER.WARMUP_EPOCH", "0.5"])
    assert vision.SOLVER.HEAD_LR_MULT == 100.0 and vision.SOLVER.BASE_LR == 1.0 and vision.SOLVER.WARMUP_EPOCH == 0.5
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("GENERATE:\n  TEMPERATURE: 1\nTRAIN:\n  LEARNING_RATE: 1\n")
    assert load_config(str(yaml_file), []).GENERATE.TEMPERATURE == 1.0
    with pytest.raises(ValueError, match="Type mismatch"):  # a string for a float key is still refused
        load_config("", ["GENERATE.TEMPERATURE", "hot"])


def test_base_chain_and_malformed_yaml_are_named(tmp_path):
    (tmp_path / "base.yaml").write_text("DATA:\n  MAX_LENGTH: 64\nTRAIN:\n  MAX_STEPS: 3\n")
    (tmp_path / "child.yaml").write_text("_BASE_: base.yaml\nTRAIN:\n  MAX_STEPS: 5\n")
    cfg = load_config(str(tmp_path / "child.yaml"), [])
    assert cfg.DATA.MAX_LENGTH == 64 and cfg.TRAIN.MAX_STEPS == 5
    (tmp_path / "bad.yaml").write_text("DATA:\n  MAX_LENGTH: [64\n")
    with pytest.raises(ValueError, match=r"bad.yaml: not valid YAML"):
        load_config(str(tmp_path / "bad.yaml"), [])
    (tmp_path / "loop.yaml").write_text("_BASE_: loop.yaml\n")
    with pytest.raises(ValueError, match="form a cycle"):
        load_config(str(tmp_path / "loop.yaml"), [])
    (tmp_path / "typo.yaml").write_text("DATA:\n  MAX_LENGHT: 64\n")
    with pytest.raises(ValueError, match=r"typo.yaml: .*MAX_LENGHT"):
        load_config(str(tmp_path / "typo.yaml"), [])


SHIPPED_METHODS = sorted(p.stem.removeprefix("llama7b_") for p in (REPO / "configs" / "alpaca").glob("llama7b_*.yaml"))


@pytest.mark.parametrize("method", [m for m in SHIPPED_METHODS if m != "base"])
def test_llama7b_configs_are_the_base_plus_one_key(method):
    assert method in TRANSFER_METHODS  # a shipped recipe names a registered method by its own name
    folder = REPO / "configs" / "alpaca"
    child = load_config(str(folder / f"llama7b_{method}.yaml"), [])
    base = load_config(str(folder / "llama7b_base.yaml"), ["MODEL.TRANSFER_TYPE", method])
    assert child.dump() == base.dump()
    assert (folder / f"llama7b_{method}.yaml").read_text().count("\n") <= 4


def test_config_copy_of_a_run_folder_is_untouched_by_other_runs(tmp_path):
    assert rf.check_output_dir(tmp_path, "A", overwrite=False) == "new"
    (tmp_path / "config.yaml").write_text("A")
    assert rf.check_output_dir(tmp_path, "A", overwrite=False) == "resume"
    (tmp_path / "checkpoint-3").mkdir()
    assert rf.check_output_dir(tmp_path, "B", overwrite=True) == "new" and not (tmp_path / "checkpoint-3").exists()
    shutil.rmtree(tmp_path)


def _two_ranks_start_a_run(rank: int, folder: str, port: int, answers) -> None:
    """One of two gloo processes: start_run over a folder with another run, then the resume point."""
    import torch.distributed as dist

    from language_generation.distributed import main_decides

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    cfg = load_config("", ["OUTPUT_DIR", folder, "MODEL.NAME_OR_PATH", "m"])
    rf.setup_logging = lambda *args: None  # leave the process's logging alone
    try:
        rf.start_run(cfg)
    except FileExistsError as err:  # rank 0 refuses; rank 1 gets the same error instead of going on
        answers.put((rank, "refused", "different config" in str(err)))
    status = rf.start_run(cfg, overwrite=True)  # rank 0 clears the other run; rank 1 waits for it
    answers.put((rank, status, sorted(p.name for p in Path(folder).iterdir())))
    answers.put((rank, "resume", main_decides(lambda: rf.resume_point(Path(folder)))))
    dist.destroy_process_group()


@pytest.mark.distributed
def test_rank_0_decides_the_run_folder_and_the_others_wait_for_its_answer(tmp_path):
    import socket

    import torch.multiprocessing as mp

    (tmp_path / "config.yaml").write_text("another config")
    (tmp_path / "checkpoint-3").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answers = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_two_ranks_start_a_run, args=(str(tmp_path), port, answers), nprocs=2)
    got = sorted(answers.get() for _ in range(6))
    assert [a for a in got if a[1] == "refused"] == [(0, "refused", True), (1, "refused", True)]
    assert [a for a in got if a[1] == "new"] == [(0, "new", ["config.yaml"]), (1, "new", ["config.yaml"])]
    assert [a for a in got if a[1] == "resume"] == [(0, "resume", None), (1, "resume", None)]


def test_two_runs_of_one_command_agree(local_model, tmp_path):  # noqa: F811
    """Everything is seeded before the model is built: the same command twice gives the same numbers."""
    from safetensors.torch import load_file

    folder, data = local_model
    runs = [train(load_config("", opts(folder, data, tmp_path / name, 3))) for name in ("a", "b")]
    assert runs[0]["train_loss"] == runs[1]["train_loss"] and runs[0]["eval_loss"] == runs[1]["eval_loss"]
    losses = [[m["loss"] for m in rf.read_metrics(tmp_path / name) if "loss" in m] for name in ("a", "b")]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    first, second = (load_file(str(tmp_path / name / "adapter.safetensors")) for name in ("a", "b"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
