"""One way to declare a transfer method on both halves: the shared registry, the "which top-down tensors
train" filter, the parameter summary."""

from __future__ import annotations

import itertools
import logging
import re

import pytest
from lm_helpers import tiny_base
from torch import nn

from language_generation.config import get_cfg as lm_cfg
from language_generation.methods import TRANSFER_METHODS as LM_METHODS
from language_generation.methods import get_transfer_method as lm_method
from language_generation.methods.toast import attach_toast
from language_generation.model import build_model
from toast.parts import trains_top_down
from toast.registry import Registry, TransferMethod
from toast.summary import parameter_summary
from toast.topdown import TopDownModule
from visual_classification.models import TRANSFER_METHODS as VISION_METHODS

from conftest import build_tiny

# -- the registry -----------------------------------------------------------------------------------------


def test_registry_looks_up_names_and_aliases_and_names_the_choices():
    registry = Registry("MODEL.TRANSFER_TYPE")
    end2end = registry.register(TransferMethod(name="end2end", build=print, aliases=("full",)))
    toast = registry.register(TransferMethod(name="toast", build=print))
    assert (
        registry.lookup("toast") is toast
        and registry.lookup("full") is end2end
        and registry.canonical("full") == "end2end"
    )
    assert sorted(registry) == ["end2end", "toast"]  # aliases are not listed as methods
    with pytest.raises(ValueError, match=r"MODEL.TRANSFER_TYPE='adapterx' is unknown; .*\['end2end', 'toast'\].*full"):
        registry.lookup("adapterx")
    with pytest.raises(ValueError, match="'full' is registered twice"):
        registry.register(TransferMethod(name="full", build=print))


def test_both_halves_declare_methods_in_one_registry():
    assert isinstance(VISION_METHODS, Registry) and isinstance(LM_METHODS, Registry)
    assert sorted(LM_METHODS) == ["end2end", "ia3", "lora", "toast", "toast-lite"]
    with pytest.raises(
        ValueError, match=r"unknown; choose one of \['end2end', 'ia3', 'lora', 'toast', 'toast-lite'\]"
    ):
        lm_method("adapterx")


def test_an_unknown_lm_method_stops_before_any_weights_load():
    cfg = lm_cfg()
    cfg.MODEL.NAME_OR_PATH = "/nonexistent/model"
    cfg.MODEL.TRANSFER_TYPE = "adapterx"
    with pytest.raises(ValueError, match=r"TRANSFER_TYPE='adapterx' is unknown; choose one of \[.*'end2end'"):
        build_model(cfg)


# -- which top-down tensors train ---------------------------------------------------------------------------

# Each half's filter written out on its own, as the reference the shared one must match.
_VISION_TOAST = re.compile(r"^top_down\.(prompt|decoders\.\d+\.(down|to_value)\.weight)$")
_VISION_LITE = re.compile(r"^top_down\.(prompt|transform|decoders\.\d+\.(down|to_value)\.lora_[ab])$")


def _lm_reference_rule(name: str, parts: set[str], lite: bool) -> bool:
    part = name.split(".")[-2] if name.startswith("decoders.") else name
    if lite and name.startswith("decoders."):
        return "lora_" in name and part in parts
    return part in parts and "lora_" not in name


@pytest.mark.parametrize(
    ("transfer", "reference", "overrides"),
    [
        ("toast", _VISION_TOAST, {}),
        ("toast-lite", _VISION_LITE, {}),
        ("toast", _VISION_TOAST, {"MODEL.BACKBONE": "convnext_atto"}),
    ],
)
def test_vision_trains_the_reference_top_down_tensors(transfer, reference, overrides):
    model = build_tiny(transfer, **overrides)
    chosen = {n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")}
    expected = {n for n, _ in model.named_parameters() if reference.match(n)}
    assert chosen == expected and any("decoders" in n for n in chosen)


def test_lm_filter_chooses_as_the_reference_for_every_set_of_parts():
    top_down = TopDownModule(8, 2)
    top_down.add_low_rank(2, 4.0)
    names = [n for n, _ in top_down.named_parameters()]
    parts = ("down", "to_value", "prompt", "transform")
    for size, lite in itertools.product(range(len(parts) + 1), (False, True)):
        for chosen in itertools.combinations(parts, size):
            got = [n for n in names if trains_top_down(n, chosen, lite)]
            assert got == [n for n in names if _lm_reference_rule(n, set(chosen), lite)], (chosen, lite)
    with pytest.raises(ValueError, match=r"unknown top-down parts \['bias'\]"):
        trains_top_down("prompt", ["bias"], False)


@pytest.mark.parametrize(
    ("transfer", "train", "expected"),
    [
        ("toast", ["auto"], {"prompt", "down.weight", "to_value.weight"}),
        ("toast", ["to_value", "transform"], {"transform", "to_value.weight"}),
        ("toast-lite", ["auto"], {"prompt", "down.lora_a", "down.lora_b", "to_value.lora_a", "to_value.lora_b"}),
    ],
)
def test_lm_marks_and_saves_what_the_filter_chooses(transfer, train, expected):
    cfg = lm_cfg()
    cfg.MODEL.TRANSFER_TYPE = transfer
    cfg.MODEL.TOAST.TRAIN = train
    model = attach_toast(tiny_base("llama"), cfg)
    trained = {n for n, p in model.top_down.named_parameters() if p.requires_grad}
    assert {re.sub(r"^decoders\.\d+\.", "", n) for n in trained} == expected
    assert not any(p.requires_grad for p in model.base.parameters())
    saved = model.adapter_state_dict()  # the whole top-down path, and everything that trains
    assert {f"top_down.{n}" for n in trained} <= set(saved) and not any(k.startswith("base.") for k in saved)


# -- the parameter summary ----------------------------------------------------------------------------------


def test_parameter_summary_counts_per_group_and_shared_tensors_once():
    model = nn.ModuleDict({"backbone": nn.Linear(4, 3), "head": nn.Linear(3, 2)})
    model["backbone"].requires_grad_(False)
    model["tied"] = model["head"]  # the same tensors under a second name
    summary = parameter_summary(model)
    assert (summary.trainable, summary.total) == (8, 23)
    assert summary.groups == {"backbone": (0, 15), "head": (8, 8)}
    assert summary.line() == "trainable 8 / 23 parameters (34.78%); per group: backbone 0/15, head 8/8"


def test_both_halves_log_the_shared_summary(tmp_path, caplog):
    vision = build_tiny("toast")
    assert parameter_summary(vision).line() in vision.summary()
    assert vision.parameter_counts() == (parameter_summary(vision).trainable, parameter_summary(vision).total)
    tiny_base("llama").save_pretrained(tmp_path / "tiny")
    cfg = lm_cfg()
    cfg.MODEL.NAME_OR_PATH = str(tmp_path / "tiny")
    with caplog.at_level(logging.INFO, logger="language_generation.model"):
        model = build_model(cfg)
    summary = parameter_summary(model)
    assert summary.groups["top_down"][0] == summary.trainable == 2 * 3 * 32 * 32 + 32
    assert f"transfer toast | {summary.line()}" in caplog.text


def test_ia3_trains_only_its_scaling_vectors(tmp_path):
    """IA3 (peft) is a registered language method: its rescaling vectors train, every base tensor is frozen."""
    tiny_base("llama").save_pretrained(tmp_path / "tiny")
    cfg = lm_cfg()
    cfg.MODEL.NAME_OR_PATH = str(tmp_path / "tiny")
    cfg.MODEL.TRANSFER_TYPE = "ia3"
    model = build_model(cfg)
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trained and all("ia3_l" in name for name in trained)
    assert {name.split(".")[-3] for name in trained} == {"k_proj", "v_proj", "down_proj"}
