"""The shared method-registry shape: config keys with defaults and ranges, table order, the range format."""

from __future__ import annotations

import pytest
from yacs.config import CfgNode

from runkit.ranges import Range, range_problems
from toast.config_keys import toast_config_keys
from toast.registry import ConfigKey, Registry, TransferMethod, add_config_keys, choice_problems


def test_a_range_admits_its_interval_and_its_extra_values_and_names_the_rest():
    top_p = Range("GENERATE.TOP_P", low=0.0, high=1.0, low_open=True)
    steps = Range("TRAIN.MAX_STEPS", low=1, also=(-1,), note="-1 trains TRAIN.NUM_TRAIN_EPOCHS")
    assert top_p.admits(1.0) and not top_p.admits(0.0) and not top_p.admits(float("nan"))
    assert steps.admits(-1) and steps.admits(5) and not steps.admits(0)
    cfg = {"GENERATE": {"TOP_P": 0.0}, "TRAIN": {"MAX_STEPS": 0}}
    assert range_problems(cfg, [top_p, steps]) == [
        "GENERATE.TOP_P=0.0 must be in (0, 1]",
        "TRAIN.MAX_STEPS=0 must be >= 1, or -1 (-1 trains TRAIN.NUM_TRAIN_EPOCHS)",
    ]
    assert range_problems({"TRAIN": {"MAX_STEPS": None}}, [steps]) == []  # None: the library's default


def test_methods_bring_their_config_keys_and_a_key_has_one_default():
    registry = Registry("MODEL.TRANSFER_TYPE")
    rank = ConfigKey("MODEL.SCALE.INIT", 1.0, "start value", Range("MODEL.SCALE.INIT", low=0.0))
    registry.register(TransferMethod(name="scale", build=print, config_keys=(rank,), table_order=2))
    registry.register(TransferMethod(name="scale2", build=print, config_keys=(rank,), table_order=1))
    assert [m.name for m in registry.in_table_order()] == ["scale2", "scale"]
    cfg = CfgNode()
    add_config_keys(cfg, registry.config_keys())
    assert cfg.MODEL.SCALE.INIT == 1.0 and isinstance(cfg.MODEL.SCALE, CfgNode)
    assert registry.ranges() == [rank.range]
    with pytest.raises(ValueError, match="MODEL.SCALE.INIT with default 2.0"):
        registry.register(
            TransferMethod(name="other", build=print, config_keys=(ConfigKey("MODEL.SCALE.INIT", 2.0, "x"),))
        )
    registry.unregister("scale2")
    assert list(registry) == ["scale"]


def test_the_shared_toast_keys_take_each_half_s_decoder_init():
    keys = {k.key: k for k in toast_config_keys("normal", "1.0 in pre-tuning")}
    assert keys["MODEL.TOAST.DECODER_INIT"].default == "normal"
    assert "1.0 in pre-tuning" in keys["MODEL.TOAST.RECON_COEF"].help
    with pytest.raises(ValueError, match="decoder_init must be one of"):
        toast_config_keys("uniform", "")


def test_a_string_key_with_choices_names_the_choices():
    keys = toast_config_keys("trunc_normal", "")
    cfg = CfgNode()
    add_config_keys(cfg, keys)
    assert choice_problems(cfg, keys) == []
    cfg.MODEL.TOAST.FOLD = "sometimes"
    assert choice_problems(cfg, keys) == ["MODEL.TOAST.FOLD='sometimes' must be one of ['auto', 'always', 'never']"]


def test_a_registry_takes_only_its_half_s_registrations():
    from language_generation.methods import TRANSFER_METHODS as LANGUAGE
    from visual_classification.models.transfer import TRANSFER_METHODS as VISION

    with pytest.raises(TypeError, match="takes a .*language_generation.*got TransferMethod"):
        LANGUAGE.register(VISION.lookup("lora"))
    with pytest.raises(TypeError, match="takes a .*visual_classification.*got TransferMethod"):
        VISION.register(LANGUAGE.lookup("lora"))
