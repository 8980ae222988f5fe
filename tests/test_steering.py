"""Value steering on its own: inert outside steer(), and loud when it cannot reach a layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from toast.steering import ValueSteering, fused_qkv_target, value_proj_target
from toast.topdown import TopDownModule


def _setup(double_bias=False):
    torch.manual_seed(0)
    top_down = TopDownModule(8, 2)
    projections = [nn.Linear(8, 24) for _ in range(2)]
    targets = [fused_qkv_target(f"layer{i}.qkv", p) for i, p in enumerate(projections)]
    return top_down, projections, ValueSteering(top_down, targets, double_bias=double_bias)


def test_hooks_are_inert_outside_steer():
    top_down, projections, _ = _setup()
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(
        projections[0](x), torch.nn.functional.linear(x, projections[0].weight, projections[0].bias)
    )


@pytest.mark.parametrize("rows", [1, 40])  # unfolded and folded injection
@pytest.mark.parametrize("double_bias", [False, True])
def test_only_the_value_slice_moves(rows, double_bias):
    top_down, projections, steering = _setup(double_bias)
    x = torch.randn(1, rows, 8)
    u = top_down.feedback(top_down.select(torch.randn(1, rows, 8)))
    plain = projections[1](x)
    with steering.steer(u):
        projections[0](x)
        steered = projections[1](x)
    td = top_down.signals(u)[1]
    expected_v = plain[..., 16:] + td @ projections[1].weight[16:].T + (projections[1].bias[16:] if double_bias else 0)
    torch.testing.assert_close(steered[..., :16], plain[..., :16], atol=0, rtol=0)
    torch.testing.assert_close(steered[..., 16:], expected_v, atol=1e-6, rtol=1e-5)


def test_a_layer_the_signal_never_reaches_is_an_error():
    top_down, projections, steering = _setup()
    u = top_down.feedback(top_down.select(torch.randn(1, 3, 8)))
    with pytest.raises(RuntimeError, match="never reached layer1.qkv"):
        with steering.steer(u):
            projections[0](torch.randn(1, 3, 8))


def test_steer_cannot_nest_and_checks_lengths():
    top_down, projections, steering = _setup()
    u = top_down.feedback(top_down.select(torch.randn(1, 3, 8)))
    with pytest.raises(ValueError, match="needs 2 per-layer signals, got 1"):
        with steering.steer(u[:1]):
            pass
    with pytest.raises(RuntimeError, match="cannot be nested"):
        with steering.steer(u):
            with steering.steer(u):
                pass


def test_targets_are_validated():
    top_down = TopDownModule(8, 2)
    with pytest.raises(ValueError, match="one value projection per top-down layer"):
        ValueSteering(top_down, [value_proj_target("v", nn.Linear(8, 8))])
    with pytest.raises(ValueError, match="multiple of 3"):
        fused_qkv_target("qkv", nn.Linear(8, 10))
    with pytest.raises(ValueError, match="double_bias needs a value bias, but v0 has none"):
        ValueSteering(top_down, [value_proj_target(f"v{i}", nn.Linear(8, 4, bias=False)) for i in range(2)], True)
    with pytest.raises(ValueError, match="takes 6 features"):
        ValueSteering(top_down, [value_proj_target(f"v{i}", nn.Linear(6, 4)) for i in range(2)])


def test_remove_restores_the_plain_projection():
    top_down, projections, steering = _setup()
    steering.remove()
    assert not projections[0]._forward_hooks


@pytest.mark.parametrize("rows", [1, 40])
def test_a_lower_precision_projection_gets_the_same_signal(rows):
    """A bf16 value projection fed an fp32 signal: built in fp32, added in bf16."""
    top_down, projections, steering = _setup()
    projections[1].to(torch.bfloat16)
    x = torch.randn(1, rows, 8)
    u = top_down.feedback(top_down.select(torch.randn(1, rows, 8)))
    plain = projections[1](x.bfloat16())
    with steering.steer(u):
        projections[0](x)
        steered = projections[1](x.bfloat16())
    td = top_down.signals(u)[1]
    expected = plain[..., 16:].float() + td @ projections[1].weight[16:].float().T
    torch.testing.assert_close(steered[..., 16:].float(), expected, atol=0.05, rtol=0.02)
