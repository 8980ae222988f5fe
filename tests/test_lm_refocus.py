"""The language refocusing experiment's parts: tasks, corpus, grid extension, paired interval, and the whole
pipeline once on a tiny random LLaMA (the real experiment is scripts/lm_refocus_experiment.sh, not a test)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
from lm_helpers import save_tiny_llama
from test_lm_data import tokenizer  # noqa: F401  (fixture)

from experiments.lm_refocus import experiment, methods
from experiments.lm_refocus.corpus import build_corpus
from experiments.lm_refocus.experiment import Setup, main_run
from experiments.lm_refocus.methods import failed_run
from experiments.lm_refocus.summary import paired_interval, write_report, write_summary
from experiments.lm_refocus.tasks import FAMILIES, POOLS, make_split
from experiments.stats import verdict
from runkit.lr_grid import next_lr


def test_test_items_are_never_seen_in_training():
    train, test = make_split(FAMILIES, "train", 50, 0), make_split(FAMILIES, "test", 50, 0)
    assert len(test) == 300 and {r["family"] for r in test} == set(FAMILIES)
    assert not set(POOLS["train"]) & set(POOLS["test"])
    train_answers = {r["output"] for r in train if r["family"] in ("add", "reverse", "upper", "json", "sort")}
    assert not train_answers & {r["output"] for r in test if r["family"] != "count"}
    assert not {r["instruction"] + r["input"] for r in train} & {r["instruction"] + r["input"] for r in test}


def test_corpus_drops_duplicates_and_documents_with_a_task_answer(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    long = "This module explains how a parser reads text and builds a tree of nodes for later passes. " * 5
    (src / "a.py").write_text(f'"""{long}"""\n\ndef f():\n    """{long}"""\n')  # the same text twice
    (src / "b.py").write_text(f'"""{long} It mentions a lantern."""\n')
    info = build_corpus(tmp_path / "out", {"lantern"}, packages_read=(), root=src, val_fraction=0.0)
    assert (info["dropped_duplicates"], info["dropped_containing_a_task_answer_or_input_word"]) == (1, 1)
    lines = (tmp_path / "out" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 1 and "lantern" not in lines[0]


def test_grid_extends_past_a_winning_edge_only():
    assert next_lr({1: 0.5, 3: 0.7, 9: 0.9}, higher_is_better=False) == pytest.approx(1 / 3)
    assert next_lr({1: 0.9, 3: 0.7, 9: 0.5}, higher_is_better=False) == 27
    assert next_lr({1: 0.9, 3: 0.5, 9: 0.7}, higher_is_better=False) is None


def test_grid_skips_failed_runs_and_goes_down_when_every_lr_failed():
    """A dead run's uniform answer (ln vocab) can score below a diverging one; it must not steer the grid."""
    assert next_lr({1: 17.4, 3: 27.9, 9: None}, higher_is_better=False) == pytest.approx(1 / 3)
    assert next_lr({1: None, 3: None, 9: None}, higher_is_better=False) == pytest.approx(1 / 3)
    assert next_lr({1: 0.9, 3: 0.5, 9: None}, higher_is_better=False) is None


def test_a_run_that_diverged_or_died_is_named_failed():
    assert failed_run([{"loss": 8.6, "grad_norm": 743.0}, {"loss": 18.3, "grad_norm": 473.0}]).startswith("diverged")
    assert failed_run([{"loss": 17.7, "grad_norm": 0.0}, {"loss": 10.8, "grad_norm": 0.0}]).startswith("dead")
    assert failed_run([{"loss": 3.1, "grad_norm": 5.0}, {"loss": 1.2, "grad_norm": 2.0}]) is None
    assert failed_run([{"train_runtime": 1.0}]) is None


def test_paired_interval_calls_a_win_only_when_it_excludes_zero():
    def run(hits):
        return {"items": [{"exact": h, "loss": 1.0, "tokens": 1} for h in hits]}

    better = {0: run([1] * 40 + [0] * 10), 1: run([1] * 38 + [0] * 12)}
    worse = {0: run([0] * 40 + [1] * 10), 1: run([0] * 38 + [1] * 12)}
    point, low, high = paired_interval(better, worse, "exact")
    assert low > 0 and verdict(low, high, True) == "TOAST wins" and point == pytest.approx(100 * (30 + 26) / 100)
    point, low, high = paired_interval(better, better, "exact")
    assert (point, low, high) == (0, 0, 0) and verdict(low, high, True).startswith("tie")
    _, low, high = paired_interval(better, worse, "exact")  # without the controls, the sign but no ranking
    assert verdict(low, high, True, ("one seed",)) == "TOAST ahead in this run, not a ranking (one seed)"
    assert verdict(low, high, False, ("one seed",)).startswith("the baseline ahead in this run")


def _tiny_study_inputs(tmp_path, tokenizer):  # noqa: F811
    """A tiny LLaMA saved as a model folder and a corpus of 12 small documents; their paths."""
    folder = save_tiny_llama(tmp_path / "tiny-llama", tokenizer)
    src = tmp_path / "src"
    src.mkdir()
    text = " ".join(["hello world say hi add 2 and 3 5 . the task"] * 30)
    for i in range(12):
        (src / f"m{i}.py").write_text(f'"""{text} {i}"""\n')
    return folder, src


def test_the_whole_pipeline_on_a_tiny_llama(tmp_path, tokenizer, monkeypatch):  # noqa: F811
    folder, src = _tiny_study_inputs(tmp_path, tokenizer)
    one_lr = {name: replace(m, lrs=m.lrs[1:2]) for name, m in methods.METHODS.items()}
    monkeypatch.setattr(experiment, "METHODS", one_lr)
    monkeypatch.setattr(experiment, "MAX_EXTENSIONS", 0)
    setup = Setup(out=tmp_path / "out", model=folder, methods=["toast-pre", "toast-lite-pre", "lora-r4"],
                  families=("add", "upper"), seeds=[0], steps=[1, 2], pretune_steps=2, pretune_checks=2,
                  pretune_lrs=(1e-3, 3e-3), block_size=16, batch=2,
                  train_per_family=3, val_per_family=2, test_per_family=2, corpus_packages=(), corpus_root=src,
                  corpus_val_fraction=0.5, val_blocks=2)  # fmt: skip
    result = main_run(setup)
    summary = write_summary(setup.out, result, setup)
    write_report(setup.out, result, setup, summary, 1.0)
    for name in ("summary.md", "summary.csv", "summary.png", "report.md"):
        assert (setup.out / name).is_file(), name
    rows = list(csv.DictReader((setup.out / "summary.csv").open()))
    assert {(r["task"], r["method"]) for r in rows} >= {(t, m) for t in ("add", "upper", "all") for m in setup.methods}
    assert result["best"]["baseline"] == "lora-r4"
    if result["best"]["toast"]:
        assert "Paired over 1 seed(s) × 4 test items" in summary
    choice = json.loads((setup.out / "pretune" / "choice.json").read_text())
    assert choice["chosen_step"] in (1, 2) and set(choice["curve"]) == {"0", "1", "2"}
    assert set(choice["lrs"]) == {"0.001", "0.003"} and choice["lr_chosen_on_val"]
    scored = {lr: v["lm"] for lr, v in choice["lrs"].items() if not v["failed"]}
    assert scored[f"{choice['lr']:g}"] == min(scored.values())  # the LM term alone decides
    assert choice["curve"][str(choice["chosen_step"])]["lm"] == scored[f"{choice['lr']:g}"]
    assert choice["beats_fresh"] == (scored[f"{choice['lr']:g}"] < choice["fresh"]["lm"])
    run = experiment.run_folder(setup, "toast-pre", result["chosen"]["toast-pre"]["lr"], 2, 0)
    assert f"TOPDOWN_WEIGHTS: {choice['weights']}" in (run / "config.yaml").read_text()
    report = (setup.out / "report.md").read_text()
    assert "Pre-tuning" in report and f"bare model {choice['bare_lm']:.4f}" in report
    assert ("does not beat" in report) != choice["beats_fresh"]
    if not choice["beats_fresh"]:  # shown, not compared
        assert "the pre-tuned methods are shown, not compared" in summary and result["best"]["toast"] is None
    lite = result["lite"]["toast-lite-pre"]
    assert [r["layer"] for r in lite] == list(range(len(lite))) and lite
    assert all(r["B"] > 0 and r["B_update"] > 0 for r in lite)  # the tuning moved every B_i
    assert "| layer | ‖A_i‖ |" in report and set(result["failed"]) == set(setup.methods)


def test_the_pipeline_two_runs_at_a_time_waits_for_the_runs_it_starts_from(tmp_path, tokenizer):  # noqa: F811
    """With ``jobs=2`` (spawned workers, the real grids): the LoRA control trains after the pre-tuning chose its
    step, each method's lr grid after the run it starts from, each seed after its grid; the summary is whole."""
    folder, src = _tiny_study_inputs(tmp_path, tokenizer)
    setup = Setup(out=tmp_path / "out", model=folder, methods=["toast-pre", "lora-corpus"], families=("add",),
                  seeds=[0, 1], steps=[1], pretune_steps=2, pretune_checks=1, block_size=16, batch=2,
                  train_per_family=3, val_per_family=2, test_per_family=2, corpus_packages=(), corpus_root=src,
                  corpus_val_fraction=0.5, val_blocks=2, jobs=2)  # fmt: skip
    result = main_run(setup)
    summary = write_summary(setup.out, result, setup)
    write_report(setup.out, result, setup, summary, 1.0)
    choice = setup.out / "pretune" / "choice.json"
    merged = setup.out / "lora_corpus" / "merged" / "config.json"
    assert merged.stat().st_mtime >= choice.stat().st_mtime
    for method, start in (("toast-pre", choice), ("lora-corpus", merged)):
        chosen = json.loads((setup.out / "runs" / method / "chosen.json").read_text())
        assert chosen == result["chosen"][method]
        for seed in (0, 1):
            run = experiment.run_folder(setup, method, chosen["lr"], 1, seed)
            assert (run / "scores_test.json").stat().st_mtime >= start.stat().st_mtime
            assert result["scores"][method][seed]["items"]
    assert f"NAME_OR_PATH: {merged.parent}" in (run / "config.yaml").read_text()
    report = (setup.out / "report.md").read_text()
    assert "2 job(s) at a time" in report and "- lr grids on val: " in report


def test_compare_names_each_shared_scoring_and_its_differences(tmp_path):
    from experiments.lm_refocus.compare import compare

    def scoring(out, name, answers, losses):
        path = out / "runs" / name / "scores_test.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"items": [{"answer": a, "loss": x} for a, x in zip(answers, losses)]}))

    scoring(tmp_path / "a", "lora/lr0.01_steps30_seed0", ["5", "hi"], [1.0, 2.0])
    scoring(tmp_path / "b", "lora/lr0.01_steps30_seed0", ["5", "ho"], [1.0, 2.5])
    scoring(tmp_path / "a", "toast/lr0.001_steps30_seed0", ["5"], [1.0])  # only in a: left out
    found = compare(tmp_path / "a", tmp_path / "b")
    assert found == {"lora/lr0.01_steps30_seed0": {"items": 2, "same_answers": 1, "loss_gap": 0.5}}
    scoring(tmp_path / "b", "toast/lr0.001_steps30_seed0", ["5", "6"], [1.0, 1.0])
    with pytest.raises(ValueError, match="not the same test split"):
        compare(tmp_path / "a", tmp_path / "b")


def test_the_pretuning_curve_pairs_toast_pre_with_lora_corpus_at_each_length(tmp_path, tokenizer):  # noqa: F811
    """``pretune_lengths=(0, 1, 2)``: length 1 is the run itself, 0 the fresh path and plain LoRA (run apart, as
    the study lacks them), 2 a study of its own with twice the pre-tuning; a paired interval at each length."""
    folder, src = _tiny_study_inputs(tmp_path, tokenizer)
    setup = Setup(out=tmp_path / "out", model=folder, methods=["toast-pre", "lora-corpus"], families=("add",),
                  seeds=[0, 1], steps=[1], pretune_steps=2, pretune_checks=1, block_size=16, batch=2,
                  train_per_family=3, val_per_family=2, test_per_family=2, corpus_packages=(), corpus_root=src,
                  corpus_val_fraction=0.5, val_blocks=2, grid_size=1, pretune_lengths=(0, 1, 2))  # fmt: skip
    result = main_run(setup)
    summary = write_summary(setup.out, result, setup)
    curve = result["pretune_curve"]
    assert {k: v["tokens"] for k, v in curve.items()} == {"0": 0, "1": 128, "2": 256}
    assert all(set(v["scores"]) == {"toast-pre", "lora-corpus"} and all(len(s) == 2 for s in v["scores"].values())
               for v in curve.values())  # fmt: skip
    assert sorted(p.name for p in (setup.out / "pretune_curve" / "x0" / "runs").iterdir()) == [
        "lora-r4",
        "toast-fresh",
    ]
    longer = json.loads((setup.out / "pretune_curve" / "x2" / "pretune" / "choice.json").read_text())
    assert longer["chosen_step"] == 4 and "/x2/" in longer["weights"]
    assert "Pre-tuning curve" in summary and "| 0 tokens | 128 tokens | 256 tokens |" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| exact match |"))
    assert row.count(" [") == 3 and (setup.out / "pretune_curve.png").stat().st_size > 0
