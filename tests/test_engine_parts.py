"""Optimiser groups, learning-rate schedule and metrics."""

from __future__ import annotations

import math

import pytest
import torch

from visual_classification.config import get_cfg
from visual_classification.engine.metrics import classification_metrics, roc_auc
from visual_classification.engine.optim import Schedule, build_optimizer, parameter_groups

from conftest import build_tiny, images


def _groups_by_name(model, cfg):
    ids = {id(p): n for n, p in model.named_parameters()}
    return {ids[id(p)]: (g["lr"], g["weight_decay"]) for g in parameter_groups(model, cfg) for p in g["params"]}


def test_decay_and_learning_rate_groups():
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.HEAD_LR_MULT = 1e-4, 0.01, 100.0
    groups = _groups_by_name(build_tiny("toast"), cfg)
    assert groups["head.weight"] == (pytest.approx(1e-2), 0.01)
    assert groups["head.bias"] == (pytest.approx(1e-2), 0.0)
    assert groups["top_down.decoders.0.down.weight"] == (1e-4, 0.01)
    assert groups["top_down.prompt"] == (1e-4, 0.01)  # PRIOR_DECAY keeps decay on p, as the original
    cfg.SOLVER.PRIOR_DECAY = False
    assert _groups_by_name(build_tiny("toast"), cfg)["top_down.prompt"] == (1e-4, 0.0)
    bias_groups = _groups_by_name(build_tiny("bias"), cfg)
    assert all(wd == 0.0 for n, (lr, wd) in bias_groups.items() if n != "head.weight")


def test_adamw_keeps_the_configured_decay_even_at_zero():
    cfg = get_cfg()
    cfg.SOLVER.OPTIMIZER, cfg.SOLVER.WEIGHT_DECAY = "adamw", 0.0
    optimizer = build_optimizer(build_tiny("linear"), cfg)
    assert isinstance(optimizer, torch.optim.AdamW)  # the original silently switched to SGD here
    cfg.SOLVER.OPTIMIZER = "lamb"
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER must be 'auto', 'sgd', 'adamw' or 'lbfgs', got 'lamb'"):
        build_optimizer(build_tiny("linear"), cfg)


def reference_warmup_cosine(step: float, warmup: float, total: float) -> float:
    """The schedule as this project computed it by hand before timm's scheduler replaced it."""
    if step < warmup:
        return step / warmup
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1.0, total - warmup))))


@pytest.mark.parametrize("mode", ["iter", "epoch"])
@pytest.mark.parametrize(("warmup", "total", "iters"), [(10, 100, 25), (1.0, 5, 20), (0.5, 3, 7), (0, 4, 10)])
def test_timm_schedule_gives_the_factors_the_hand_written_one_gave(mode, warmup, total, iters):
    """Paper configs (VTAB: 10 warm-up of 100 epochs, per epoch) and the own-data default keep their lrs."""
    cfg = get_cfg()
    cfg.SOLVER.LR_STEP, cfg.SOLVER.WARMUP_EPOCH, cfg.SOLVER.TOTAL_EPOCH = mode, warmup, total
    optimizer = torch.optim.SGD([{"params": [torch.zeros(1)], "lr": 0.1}, {"params": [torch.zeros(1)], "lr": 10.0}])
    schedule = Schedule(optimizer, cfg, iters_per_epoch=iters)
    for epoch in range(int(total)):
        for it in range(iters):
            factor = schedule.apply(epoch, it)
            step, w, t = (
                (epoch * iters + it + 1, warmup * iters, total * iters) if mode == "iter" else (epoch, warmup, total)
            )
            expected = reference_warmup_cosine(step, w, t)
            assert factor == pytest.approx(expected, rel=1e-12, abs=1e-15), (epoch, it)
            assert optimizer.param_groups[1]["lr"] == pytest.approx(10.0 * expected, rel=1e-12, abs=1e-14)


def test_schedule_per_iteration_and_the_originals_per_epoch():
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR, cfg.SOLVER.WARMUP_EPOCH, cfg.SOLVER.TOTAL_EPOCH = 0.1, 1, 4
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = Schedule(optimizer, cfg, iters_per_epoch=10)
    assert schedule.apply(0, 0) == pytest.approx(0.1)  # first step already trains
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert schedule.apply(0, 9) == pytest.approx(1.0)
    assert schedule.apply(2, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 30)))
    cfg.SOLVER.LR_STEP = "epoch"
    epochwise = Schedule(optimizer, cfg, iters_per_epoch=10)
    assert epochwise.apply(0, 5) == 0.0  # the original trains epoch 0 at lr 0
    assert epochwise.apply(1, 0) == 1.0


def test_metrics():
    logits = torch.tensor([[2.0, 1.0, 0.0, 0, 0, 0], [0.0, 1.0, 2.0, 0, 0, 0], [0.0, 0.0, 0.0, 5, 0, 0]])
    metrics = classification_metrics(logits, torch.tensor([0, 1, 3]))
    assert metrics["top1"] == pytest.approx(200 / 3) and metrics["top5"] == 100.0
    assert "top5" not in classification_metrics(logits[:, :5], torch.tensor([0, 1, 3]))
    binary = classification_metrics(torch.tensor([[0.0, 1.0], [0.0, -1.0], [0.0, 2.0]]), torch.tensor([1, 0, 0]))
    assert binary["rocauc"] == pytest.approx(50.0) and "top5" not in binary
    assert roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])) == 0.75
    assert roc_auc(torch.tensor([0.5, 0.5]), torch.tensor([True, False])) == 0.5


def test_a_diverging_loss_is_named_in_the_log_with_its_likely_cause(caplog):
    """The refocus demo's pre-tuning at lr 1e-3 went 1.62 → 101,166 with best/ quietly kept at epoch 1."""
    import logging
    from types import SimpleNamespace

    from visual_classification.engine.trainer import Trainer

    trainer = SimpleNamespace(
        lowest_loss=math.inf, recon_mean=0.05, cfg=SimpleNamespace(SOLVER=SimpleNamespace(BASE_LR=1e-3))
    )
    with caplog.at_level(logging.WARNING, logger="visual_classification.engine.trainer"):
        Trainer.warn_if_diverging(trainer, 1, 1.62)
        Trainer.warn_if_diverging(trainer, 2, 1.40)
        Trainer.warn_if_diverging(trainer, 3, 12.0)  # below 10x the lowest (1.40): no warning yet
        assert not caplog.records
        trainer.recon_mean = 101164.0
        Trainer.warn_if_diverging(trainer, 4, 101166.0)
    (record,) = caplog.records
    assert (
        "epoch 4" in record.message and "reconstruction loss" in record.message and "SOLVER.BASE_LR" in record.message
    )


def test_roc_auc_equals_the_pairwise_definition_with_many_ties():
    """AUROC = P(score_pos > score_neg) + ½ P(tie), counted over every pair, on scores with heavy ties."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 7, (301,), generator=gen).float() / 7  # 7 distinct values: ties everywhere
    positives = torch.rand(301, generator=gen) < 0.3
    pos, neg = scores[positives][:, None], scores[~positives][None, :]
    pairwise = ((pos > neg).double() + 0.5 * (pos == neg).double()).mean().item()
    assert abs(roc_auc(scores, positives) - pairwise) < 1e-12


def test_one_frozen_prefix_strategy_names_what_every_adapter_shares():
    """Training, evaluation and the last/best sweep ask one object; it says what the frozen prefix is."""
    from visual_classification.engine.frozen_prefix import FrozenPrefix, strategy_for
    from visual_classification.models.transfer.registry import FIRST_PASS, PRE_LOGITS

    toast, linear, lora = build_tiny("toast"), build_tiny("linear"), build_tiny("lora")
    assert FrozenPrefix.of(toast, None).strategy.kind == FIRST_PASS and not FrozenPrefix.of(toast, None).cached
    assert FrozenPrefix.of(linear, None).strategy.kind == PRE_LOGITS
    assert FrozenPrefix.of(lora, None).strategy is None  # LoRA changes the backbone: nothing is shared
    assert FrozenPrefix.of(linear, strategy_for(PRE_LOGITS)).cached
    toast.backbone.blocks[0].attn.qkv.weight.requires_grad_(True)  # a backbone that trains has no frozen prefix
    assert FrozenPrefix.of(toast, None).strategy is None
    batch = (images(2), torch.tensor([0, 1]))
    strategy = FrozenPrefix.of(linear, None)
    linear.eval()
    with torch.no_grad():
        prefix = strategy.prefix(linear, batch, "val", torch.device("cpu"))
        torch.testing.assert_close(
            strategy.adapter_logits(linear, batch, prefix, torch.device("cpu")), linear(batch[0])
        )
    with pytest.raises(ValueError, match="no frozen prefix"):
        FrozenPrefix.of(lora, None).prefix(lora, batch, "val", torch.device("cpu"))
