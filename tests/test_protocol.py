"""The VTAB protocol at its real size: test where it is reported, feature caches, quick start, run folders."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from datasets_on_disk import write_image_folder, write_vtab_task
from test_train import kill_in_epoch_2, run_opts

from visual_classification.config import load_config
from visual_classification.engine import feature_cache as fc
from visual_classification.engine import run_files as rf
from visual_classification.engine.trainer import resolve_workers
from visual_classification.models.transfer.registry import PRE_LOGITS
from visual_classification.train import main, train

from conftest import refused

TIMING = ("train_images_per_s", "peak_mem_mib")


@pytest.fixture
def toy(tmp_path):
    write_vtab_task(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def fresh_caches():
    fc.clear_memory()
    yield
    fc.clear_memory()


def strip(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in ("seconds", "run")}


def history(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rf.read_metrics(out)]


# -- 1. test where it is reported ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transfer, extra",
    [("toast", {}), ("linear", {}), ("toast", {"MODEL.TOAST.CACHE_FIRST_PASS": True}), ("lora", {})],
    ids=["toast", "linear", "toast-cached", "lora"],
)
def test_test_at_the_end_gives_the_numbers_of_testing_every_epoch(toy, tmp_path, transfer, extra):
    opts = {"SOLVER.BASE_LR": 0.01, "SOLVER.TOTAL_EPOCH": 4, **extra}
    every = train(load_config("", run_opts(toy, tmp_path / "every", transfer, **opts, **{"SOLVER.TEST_PERIOD": 1})))
    end = train(load_config("", run_opts(toy, tmp_path / "end", transfer, **opts)))
    assert strip(end) == strip(every)
    assert 1 <= end["best_epoch"] < 4  # the best-validation adapter is tested after training, from best/
    # (with the last model, in one sweep: TOAST's pass 1 and the probe's features computed once for both)
    per_epoch, at_end = history(tmp_path / "every"), history(tmp_path / "end")
    assert [r["epoch"] for r in at_end if r["test"]] == [end["best_epoch"], 4]
    for a, b in zip(per_epoch, at_end):
        assert {**a, "test": None} == {**b, "test": None}  # training and validation untouched
        assert b["test"] in (None, a["test"])


def test_test_period_and_eval_period(toy, tmp_path):
    out = tmp_path / "run"
    train(
        load_config("", run_opts(toy, out, "linear", epochs=4, **{"SOLVER.TEST_PERIOD": 2, "SOLVER.EVAL_PERIOD": 3}))
    )
    records = rf.read_metrics(out)
    assert [r["epoch"] for r in records if r["val"]] == [3, 4]
    assert {2, 4} <= {r["epoch"] for r in records if r["test"]}
    with pytest.raises(ValueError, match="SOLVER.EVAL_PERIOD=0 must be >= 1"):
        load_config("", ["SOLVER.EVAL_PERIOD", "0"])


# -- 2. and 3. caches ---------------------------------------------------------------------------------------


def test_cached_linear_probe_equals_the_uncached_one(toy, tmp_path):
    base = {"MODEL.DROP_PATH_RATE": 0.0, "SOLVER.TEST_PERIOD": 1}
    plain = train(load_config("", run_opts(toy, tmp_path / "plain", "linear", epochs=3, **base)))
    cached_opts = {**base, "DATA.CACHE_FEATURES": True, "DATA.CACHE_DTYPE": "float32"}
    cached = train(load_config("", run_opts(toy, tmp_path / "cached", "linear", epochs=3, **cached_opts)))
    assert strip(cached) == strip(plain)
    for a, b in zip(history(tmp_path / "plain"), history(tmp_path / "cached")):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val"] == b["val"] and a["test"] == b["test"]


def test_a_cache_with_stochastic_depth_warns_naming_both_keys_and_stores_float32(toy, tmp_path, caplog):
    """The cached backbone runs without drop path: fidelity traded for speed is said, never silent; the default
    storage is float32, so that a cache's promise (equal to the uncached run) holds without extra keys."""
    assert load_config("", []).DATA.CACHE_DTYPE == "float32"
    opts = {"MODEL.DROP_PATH_RATE": 0.1, "DATA.CACHE_FEATURES": True}
    with caplog.at_level(logging.WARNING):
        train(load_config("", run_opts(toy, tmp_path / "cached", "linear", epochs=1, **opts)))
    assert "DATA.CACHE_FEATURES: cached features are computed without stochastic depth" in caplog.text
    assert "MODEL.DROP_PATH_RATE 0.1" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        train(
            load_config(
                "", run_opts(toy, tmp_path / "plain", "linear", epochs=1, **{**opts, "MODEL.DROP_PATH_RATE": 0.0})
            )
        )
    assert "stochastic depth" not in caplog.text


def test_cached_first_pass_equals_the_uncached_one_and_is_reused(toy, tmp_path, monkeypatch):
    calls = []
    real = fc.compute_features
    monkeypatch.setattr(fc, "compute_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    base = {"MODEL.DROP_PATH_RATE": 0.0, "SOLVER.TEST_PERIOD": 1}
    plain = train(load_config("", run_opts(toy, tmp_path / "plain", "toast", **base)))
    cached_opts = {**base, "MODEL.TOAST.CACHE_FIRST_PASS": True, "DATA.CACHE_DTYPE": "float32"}
    cached = train(load_config("", run_opts(toy, tmp_path / "cached", "toast", **cached_opts)))
    assert strip(cached)["test_top1"] == plain["test_top1"]
    for a, b in zip(history(tmp_path / "plain"), history(tmp_path / "cached")):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val"] == b["val"]
    assert len(calls) == 3  # train, val and test, once
    train(load_config("", run_opts(toy, tmp_path / "lr", "toast", **cached_opts, **{"SOLVER.BASE_LR": 0.02})))
    assert len(calls) == 3  # another grid point on the same task and weights reuses them


def test_cache_on_disk_is_memory_mapped_by_the_next_process(toy, tmp_path, monkeypatch):
    opts = {"DATA.CACHE_FEATURES": True, "DATA.CACHE_DIR": str(tmp_path / "cache"), "DATA.CACHE_DTYPE": "bfloat16"}
    first = train(load_config("", run_opts(toy, tmp_path / "a", "linear", **opts)))
    assert len(list((tmp_path / "cache").glob("pre_logits-*.npy"))) == 3
    fc.clear_memory()  # as a new process
    monkeypatch.setattr(fc, "compute_features", lambda *a, **k: pytest.fail("recomputed a cache on disk"))
    again = train(load_config("", run_opts(toy, tmp_path / "b", "linear", **opts)))
    assert again["test_top1"] == first["test_top1"]


def test_cache_keys_change_with_weights_crop_and_image_list(toy, tmp_path):
    from visual_classification.data import build_task_data
    from visual_classification.models.build import build_model

    def key(crop=32, split="val200", perturb=False, name="vit_tiny_patch16_224"):
        cfg = load_config(
            "", run_opts(toy, tmp_path / "k", "linear", **{"DATA.CROPSIZE": crop, "DATA.TEST_SPLIT": split})
        )
        torch.manual_seed(0)
        model = build_model(cfg)
        if perturb:
            with torch.no_grad():
                model.backbone.blocks[3].mlp.fc1.weight[0, 0] += 1e-3
        dataset = build_task_data(cfg, (0.5,) * 3, (0.5,) * 3).test
        digest = fc.weights_digest(model.backbone)
        return fc.cache_key(PRE_LOGITS.name, digest, crop, dataset, "float16", False, model_name=name)

    reference = key()
    assert key() == reference  # deterministic
    assert key(name="deit_tiny_patch16_224") != reference  # same tensors, another timm model
    real_version = timm.__version__
    try:
        timm.__version__ = "0.0.0"  # a timm upgrade may change a model's forward
        assert key() != reference
    finally:
        timm.__version__ = real_version
    assert key(perturb=True) != reference
    assert key(crop=48) != reference
    assert key(split="test") != reference
    image = toy / "toy" / "images" / "val200_0.png"
    image.write_bytes(image.read_bytes() + b"\0")  # the same list with one image replaced
    assert key() != reference


def test_caches_are_refused_with_augmentation_and_for_other_methods(tmp_path):
    write_image_folder(tmp_path / "folder", per_class=2)
    opts = run_opts(tmp_path / "folder", tmp_path / "run", "toast", **{"DATA.NAME": "", "DATA.NUMBER_CLASSES": 2})
    with pytest.raises(ValueError, match="CACHE_FIRST_PASS needs a deterministic training transform.*RandomCrop"):
        train(load_config("", [*opts, "MODEL.TOAST.CACHE_FIRST_PASS", "True"]))
    with pytest.raises(ValueError, match=r"DATA.CACHE_FEATURES is for linear \(it caches the pooled features"):
        load_config("", ["MODEL.TRANSFER_TYPE", "lora", "DATA.CACHE_FEATURES", "True"])
    with pytest.raises(ValueError, match="CACHE_FIRST_PASS is for toast and toast-lite"):
        load_config("", ["MODEL.TRANSFER_TYPE", "prompt", "MODEL.TOAST.CACHE_FIRST_PASS", "True"])


# -- 4. quick start -----------------------------------------------------------------------------------------


def test_cli_answers_help_and_config_errors_before_importing_torch():
    probe = (
        "import sys\n"
        "from visual_classification.train import main\n"
        "for argv in (['--help'], ['SOLVER.BASE_LRR', '1']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        print('exit', e.code)\n"
        "print('torch' in sys.modules, 'timm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert "error: command-line override: Non-existent key: SOLVER.BASE_LRR" in out.stderr and "exit 2" in out.stdout
    assert out.stdout.strip().endswith("False False")


def test_data_is_checked_before_the_model_is_built(toy, tmp_path, monkeypatch):
    import visual_classification.models.build as models

    monkeypatch.setattr(models, "build_model", lambda cfg: pytest.fail("the model was built before the data check"))
    (toy / "toy" / "test.txt").write_text("images/missing.png 0\n")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        train(load_config("", run_opts(toy, tmp_path / "run")))
    assert not (tmp_path / "run" / rf.CONFIG).exists()  # the run never started


def test_num_workers_default_fits_the_machine():
    cpus = len(os.sched_getaffinity(0))
    assert 1 <= resolve_workers(-1) <= min(4, cpus)
    assert resolve_workers(3) == 3


# -- 6. run folders under faults ----------------------------------------------------------------------------


def test_a_run_that_failed_on_its_data_does_not_block_the_corrected_command(toy, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / rf.CONFIG).write_text("an earlier attempt that finished no epoch\n")
    (out / rf.LOG).write_text("old log\n")
    train(load_config("", run_opts(toy, out, epochs=1)))
    assert "old log" not in (out / rf.LOG).read_text()


def test_overwrite_is_accepted_after_the_overrides(toy, tmp_path, capsys):
    out = tmp_path / "run"
    main(run_opts(toy, out, epochs=1))
    with refused(capsys, "different config"):
        main(run_opts(toy, out, epochs=2))
    main([*run_opts(toy, out, epochs=2), "--overwrite"])
    assert json.loads((out / rf.RESULTS).read_text())["epochs"] == 2


def test_a_restart_that_is_not_a_resume_starts_clean(toy, tmp_path, monkeypatch):
    out = tmp_path / "run"
    kill_in_epoch_2(monkeypatch, run_opts(toy, out, epochs=3))
    (out / rf.LAST).unlink()  # as a kill during its first write, or a corrupt last.pt deleted as advised
    (out / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    results = train(load_config("", run_opts(toy, out, epochs=3)))
    assert [r["epoch"] for r in rf.read_metrics(out)] == [1, 2, 3] and results["epochs"] == 3
    assert not list(out.glob(".*.tmp"))


def test_a_second_live_run_in_the_same_folder_is_refused(toy, tmp_path):
    out = tmp_path / "run"
    with rf.run_lock(out), pytest.raises(rf.RunLocked, match="in use by another live run"):
        train(load_config("", run_opts(toy, out, epochs=1)))
    train(load_config("", run_opts(toy, out, epochs=1)))  # the lock goes with its holder


def test_files_keep_the_users_umask_and_epochs_count_one_way(toy, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        results = train(load_config("", run_opts(toy, out, epochs=3, **{"SOLVER.BASE_LR": 0.01})))
    finally:
        os.umask(old)
    for name in (rf.RESULTS, rf.LAST, rf.CURVES, rf.METRICS, f"{rf.BEST}/adapter.safetensors"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name
    best = max(rf.read_metrics(out), key=lambda r: r["val"]["top1"])
    adapter = json.loads((out / rf.BEST / "adapter_config.json").read_text())
    assert results["best_epoch"] == best["epoch"] == adapter["epoch"]


def test_tune_skips_runs_another_copy_holds_and_collects_them_after(monkeypatch):
    from visual_classification import tune

    calls, waited = [], []

    def fake_train(cfg):
        calls.append(cfg.OUTPUT_DIR)
        if cfg.OUTPUT_DIR == "a" and not waited:
            raise rf.RunLocked("busy")
        return {"dir": cfg.OUTPUT_DIR}

    monkeypatch.setattr(tune, "train", fake_train)
    monkeypatch.setattr(rf, "wait_for_lock", lambda out: waited.append(str(out)))
    cfgs = [load_config("", ["OUTPUT_DIR", d]) for d in ("a", "b")]
    assert [r["dir"] for r in tune.run_all(cfgs)] == ["a", "b"]
    assert calls == ["a", "b", "a"] and waited == ["a"]


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "vit_base_patch16_224.augreg_in21k", "convnext_atto"])
def test_normalisation_known_before_the_model_is_the_models_own(name):
    import timm

    from visual_classification.config import get_cfg
    from visual_classification.train import _normalization

    cfg = get_cfg()
    cfg.MODEL.BACKBONE = name
    own = timm.data.resolve_model_data_config(timm.create_model(name, pretrained=False, num_classes=0))
    assert _normalization(cfg) == (tuple(own["mean"]), tuple(own["std"]))


def test_one_tune_grid_and_its_seeds_compute_each_cache_once(tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    from visual_classification.tune import tune

    write_vtab_task(tmp_path / "data", name="toy")
    weights = tmp_path / "backbone.safetensors"
    save_file(timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=0).state_dict(), str(weights))
    calls = []
    real = fc.compute_features
    monkeypatch.setattr(fc, "compute_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    opts = run_opts(tmp_path / "data", tmp_path / "out", "linear", epochs=1, **{"MODEL.MODEL_ROOT": str(weights)})
    cfg = load_config("", [*opts, "DATA.CACHE_FEATURES", "True"])
    result = tune(cfg, lrs=[0.5, 0.1], wds=[0.0, 0.001], seeds=[1, 2])
    assert len(result["final"]) == 2
    assert len(calls) == 4  # train800, val200 (the grid's 4 runs); train800val200, test (both seeds)
