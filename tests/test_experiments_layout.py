"""Research code has one home: both studies declare their methods in one shape and judge their intervals by one
rule (that no installed package imports ``experiments`` is in test_import_layout.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.methods import Method, table
from experiments.stats import Paired, side_of_zero, verdict

REPO = Path(__file__).resolve().parents[1]


def test_both_studies_declare_their_methods_in_one_shape():
    from experiments.lm_refocus.methods import METHODS as LANGUAGE
    from experiments.vision_refocus.methods import METHODS as VISION

    for methods in (VISION, LANGUAGE):
        assert all(isinstance(m, Method) and m.name == name for name, m in methods.items())
        assert {n for n, m in methods.items() if m.is_toast} == {n for n in methods if n.startswith("toast")}
    assert (
        VISION["toast-pretuned"].pretuned and VISION["bias-seq"].source_stage and VISION["bias-seq"].transfer == "bias"
    )
    assert LANGUAGE["toast-pre"].pretuned and LANGUAGE["lora-corpus"].source_stage
    assert VISION["linear"].opts["DATA.CACHE_FEATURES"] == "True" and VISION["toast"].middle_lr == 3e-4


def test_a_method_names_what_is_wrong_with_it():
    with pytest.raises(ValueError, match="x: overrides must be KEY VALUE pairs"):
        Method("x", ("MODEL.TRANSFER_TYPE",), (1e-3,))
    with pytest.raises(ValueError, match="x: overrides must set MODEL.TRANSFER_TYPE"):
        Method("x", ("SEED", "0"), (1e-3,))
    with pytest.raises(ValueError, match="x: lrs must hold"):
        Method("x", ("MODEL.TRANSFER_TYPE", "lora"), ())
    with pytest.raises(ValueError, match="x: family must be 'toast' or 'baseline'"):
        Method("x", ("MODEL.TRANSFER_TYPE", "lora"), (1e-3,), family="lora")
    one = Method("x", ("MODEL.TRANSFER_TYPE", "lora"), (1e-3,))
    with pytest.raises(ValueError, match="two methods are named 'x'"):
        table((one, one))


@pytest.mark.parametrize(("low", "high", "side"), [(0.5, 2.0, "above"), (-2.0, -0.5, "below"), (-1.0, 1.0, "includes"),
                                                   (0.0, 1.0, "includes"), (-1.0, 0.0, "includes")])  # fmt: skip
def test_both_studies_call_an_interval_by_the_same_side_of_zero(low, high, side):
    assert side_of_zero(low, high) == side
    vision = Paired(5, (low + high) / 2, low, high).verdict
    language = verdict(low, high, higher_is_better=True)
    assert (vision, language) == {
        "above": ("wins", "TOAST wins"),
        "below": ("loses", "TOAST loses"),
        "includes": ("tie (interval includes 0)", "tie (the interval includes 0)"),
    }[side]
