"""The linear probe's full-batch solver (SOLVER.OPTIMIZER lbfgs) reaches scikit-learn's LogisticRegression optimum."""

from __future__ import annotations

import json

import pytest
import torch
from datasets_on_disk import write_vtab_task
from test_train import run_opts

from visual_classification.config import load_config
from visual_classification.engine import feature_cache as fc
from visual_classification.engine.optim import build_optimizer
from visual_classification.engine.probe import full_batch_epoch
from visual_classification.train import train

from conftest import tiny_cfg


def test_lbfgs_probe_reaches_the_optimum_scikit_learn_finds():
    sklearn = pytest.importorskip("sklearn.linear_model")
    gen = torch.Generator().manual_seed(0)
    n, width, classes, wd = 240, 16, 4, 1e-2
    centres = 1.5 * torch.randn(classes, width, generator=gen)
    labels = torch.arange(n) % classes
    features = centres[labels] + torch.randn(n, width, generator=gen)  # overlapping classes: a finite optimum
    head = torch.nn.Linear(width, classes)
    cfg = tiny_cfg("linear", **{"SOLVER.OPTIMIZER": "lbfgs", "DATA.CACHE_FEATURES": True})
    optimizer = build_optimizer(head, cfg)
    for _ in range(5):
        full_batch_epoch(head, optimizer, features, labels, wd)
    # mean CE + λ/2‖W‖²  ==  (Σ CE + 1/(2C)‖W‖²) / n  with  C = 1/(nλ)
    reference = sklearn.LogisticRegression(C=1 / (n * wd), tol=1e-10, max_iter=10_000).fit(features.numpy(), labels)
    ours = head(features).softmax(-1).detach()
    theirs = torch.from_numpy(reference.predict_proba(features.numpy())).float()
    assert (ours - theirs).abs().max() < 1e-3  # float32 against float64: the same optimum
    assert torch.allclose(head.weight.detach(), torch.from_numpy(reference.coef_).float(), atol=1e-3)


def test_a_probe_run_with_lbfgs_trains_on_cached_features_to_a_lower_loss_than_minibatch_sgd(tmp_path):
    write_vtab_task(tmp_path / "data")
    base = {"MODEL.DROP_PATH_RATE": 0.0, "DATA.CACHE_FEATURES": True, "SOLVER.WEIGHT_DECAY": 1e-3}
    fc.clear_memory()
    train(load_config("", run_opts(tmp_path / "data", tmp_path / "sgd", "linear", epochs=3, **base)))
    solved = train(
        load_config(
            "",
            run_opts(
                tmp_path / "data", tmp_path / "lbfgs", "linear", epochs=3, **base, **{"SOLVER.OPTIMIZER": "lbfgs"}
            ),
        )
    )
    fc.clear_memory()
    last = lambda out: json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["train_loss"]  # noqa: E731
    assert last(tmp_path / "lbfgs") < last(tmp_path / "sgd")
    assert solved["final_val_top1"] is not None and (tmp_path / "lbfgs" / "best" / "adapter.safetensors").is_file()
    states = torch.load(tmp_path / "lbfgs" / "last.pt", weights_only=True)["optimizer"]["state"]
    assert states and all("old_dirs" in state for state in states.values())  # LBFGS's own state, resumable


def test_lbfgs_is_refused_where_there_is_no_cached_probe():
    with pytest.raises(
        ValueError,
        match="SOLVER.OPTIMIZER lbfgs .* needs a method whose cache is pre_logits and DATA.CACHE_FEATURES True",
    ):
        load_config("", ["SOLVER.OPTIMIZER", "lbfgs", "MODEL.TRANSFER_TYPE", "toast"])
