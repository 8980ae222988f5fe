"""The folded top-down path in training: the loss and every gradient equal the layer-by-layer path's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from toast.folded import FoldChoice, TrainableFold
from toast.folded_rule import fold_pays
from toast.steering import ValueSteering, fused_qkv_target, value_proj_target
from toast.topdown import TopDownModule
from toast.two_pass import run_two_passes

WIDTH, LAYERS, HEADS = 8, 3, 2


class Block(nn.Module):
    """Pre-norm attention with a fused q/k/v (ViT) or separate projections with fewer value heads (GQA)."""

    def __init__(self, fused: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(WIDTH)
        self.fused = fused
        if fused:
            self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        else:
            self.q_proj = nn.Linear(WIDTH, WIDTH, bias=False)
            self.k_proj = nn.Linear(WIDTH, WIDTH // HEADS, bias=False)
            self.v_proj = nn.Linear(WIDTH, WIDTH // HEADS, bias=False)  # one key/value head shared by both
        self.proj = nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.norm(x)
        if self.fused:
            q, k, v = self.qkv(a).chunk(3, dim=-1)
        else:
            q, k, v = self.q_proj(a), self.k_proj(a).repeat(1, 1, HEADS), self.v_proj(a).repeat(1, 1, HEADS)
        split = lambda t: t.view(*t.shape[:2], HEADS, -1).transpose(1, 2)
        out = nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
        return x + self.proj(out.transpose(1, 2).reshape(x.shape))


def _model(fused: bool, double_bias: bool, lite: bool):
    torch.manual_seed(0)
    blocks = nn.ModuleList(Block(fused) for _ in range(LAYERS)).double()
    top_down = TopDownModule(WIDTH, LAYERS).double()
    if lite:
        top_down.add_low_rank(2, 1.0)
        for decoder in top_down.decoders:
            for linear in (decoder.down, decoder.to_value):
                nn.init.normal_(linear.lora_b, std=0.1)  # a non-zero update, so its gradient path is exercised
    make = fused_qkv_target if fused else value_proj_target
    targets = [make(f"{i}", b.qkv if fused else b.v_proj) for i, b in enumerate(blocks)]
    for p in blocks.parameters():
        p.requires_grad_(False)
    return blocks, top_down, ValueSteering(top_down, targets, double_bias=double_bias)


def _loss_and_grads(blocks, top_down, steering, x, fold):
    def run_pass(_):
        h = x
        for block in blocks:
            h = block(h)
        return h

    top_down.zero_grad()
    out = run_two_passes(run_pass, top_down, steering, first_pass_needs_grad=False, fold=fold)
    loss = out.tokens.pow(2).mean() + out.tokens[:, 0].sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in top_down.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("fused,double_bias", [(True, True), (True, False), (False, False)])
@pytest.mark.parametrize("lite", [False, True])
def test_folded_training_gives_the_layer_by_layer_loss_and_gradients(fused, double_bias, lite):
    blocks, top_down, steering = _model(fused, double_bias, lite)
    if lite:
        for name, p in top_down.named_parameters():
            p.requires_grad_("lora_" in name or name in ("prompt", "transform"))
    x = torch.randn(2, 5, WIDTH, dtype=torch.float64)
    layered_loss, layered = _loss_and_grads(blocks, top_down, steering, x, FoldChoice("never"))
    folded_loss, folded = _loss_and_grads(blocks, top_down, steering, x, FoldChoice("always"))
    assert set(folded) == set(layered) and len(layered) >= 3
    torch.testing.assert_close(folded_loss, layered_loss, rtol=1e-10, atol=1e-10)
    for name in layered:
        torch.testing.assert_close(folded[name], layered[name], rtol=1e-10, atol=1e-10, msg=name)


def test_the_rule_folds_only_where_it_pays_and_never_with_a_reconstruction_loss(monkeypatch):
    blocks, top_down, steering = _model(True, True, False)
    widths = [WIDTH] * LAYERS  # ViT-like: threshold (L·C + ΣCv) / (L + 1) = 12 tokens
    assert not fold_pays(12, WIDTH, widths) and fold_pays(13, WIDTH, widths)
    assert fold_pays(6304, 768, [768] * 12)  # ViT-B/16, 224 px, batch 32
    assert not fold_pays(2048, 4096, [4096] * 32)  # LLaMA-7B, a micro-batch of 2,048 tokens
    choice = FoldChoice("auto")
    small, large = torch.randn(1, 12, WIDTH, dtype=torch.float64), torch.randn(1, 13, WIDTH, dtype=torch.float64)
    assert choice(top_down, steering, small, 0.0) is None
    assert isinstance(choice(top_down, steering, large, 0.0), TrainableFold)
    assert choice(top_down, steering, large, 0.1) is None  # the reconstruction loss needs each A_i
    with torch.no_grad():  # evaluation: one fold kept while the tensors behind it are unchanged
        first = choice(top_down, steering, large, 0.0)
        assert choice(top_down, steering, large, 0.0) is first
        top_down.prompt.add_(1.0)
        assert choice(top_down, steering, large, 0.0) is not first
    with pytest.raises(ValueError, match="fold mode must be one of"):
        FoldChoice("sometimes")


def _lm_loss_and_grads(family: str, transfer: str, fold: str):
    from lm_helpers import tiny_toast

    model = tiny_toast(family, transfer=transfer, FOLD=fold).double().train()
    ids = torch.randint(3, 96, (2, 7), generator=torch.Generator().manual_seed(0))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad for n, p in model.top_down.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("family", ["llama", "qwen2"])  # Qwen2: value bias, grouped-query values
@pytest.mark.parametrize("transfer", ["toast", "toast-lite"])
def test_the_language_model_trains_alike_folded_and_layer_by_layer(family, transfer):
    layered_loss, layered = _lm_loss_and_grads(family, transfer, "never")
    folded_loss, folded = _lm_loss_and_grads(family, transfer, "always")
    assert set(folded) == set(layered) and len(layered) >= 2
    torch.testing.assert_close(folded_loss, layered_loss, rtol=1e-10, atol=1e-10)
    for name in layered:
        torch.testing.assert_close(folded[name], layered[name], rtol=1e-10, atol=1e-10, msg=name)


def _vit_loss_and_grads(transfer: str, fold: str, double_bias: bool, cached: bool):
    from conftest import build_tiny, images, randomise_top_down

    model = build_tiny(transfer, **{"MODEL.TOAST.FOLD": fold, "MODEL.TOAST.DOUBLE_BIAS": double_bias}).double()
    randomise_top_down(model)
    model.train()
    images = images(3).double()
    first_pass = None
    if cached:
        with torch.no_grad():
            first_pass = model.backbone.eval().forward_features(images)
        model.train()
    torch.manual_seed(1)  # the same stochastic depth draws on both paths
    logits = model(images, first_pass=first_pass)
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0]))
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("transfer", ["toast", "toast-lite"])
@pytest.mark.parametrize("double_bias", [True, False])
@pytest.mark.parametrize("cached", [False, True])
def test_the_vit_trains_alike_folded_and_layer_by_layer(transfer, double_bias, cached):
    layered_loss, layered = _vit_loss_and_grads(transfer, "never", double_bias, cached)
    folded_loss, folded = _vit_loss_and_grads(transfer, "always", double_bias, cached)
    assert set(folded) == set(layered) and any(n.startswith("top_down.") for n in layered)
    torch.testing.assert_close(folded_loss, layered_loss, rtol=1e-10, atol=1e-10)
    for name in layered:
        torch.testing.assert_close(folded[name], layered[name], rtol=1e-10, atol=1e-10, msg=name)


def _ddp_gradients(rank: int, world: int, port: int, fold: str, out: str) -> None:
    """One rank's DDP step on its half of the batch; rank 0 saves the averaged top-down gradients."""
    import os

    from conftest import build_tiny, images, randomise_top_down

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    model = build_tiny("toast", **{"MODEL.TOAST.FOLD": fold}).double()
    randomise_top_down(model)
    ddp = nn.parallel.DistributedDataParallel(model.train())
    share = slice(rank * 4 // world, (rank + 1) * 4 // world)
    loss = nn.functional.cross_entropy(ddp(images(4).double()[share]), torch.tensor([0, 1, 2, 3])[share])
    loss.backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, out)
    torch.distributed.destroy_process_group()


def test_under_ddp_folded_and_layer_by_layer_give_the_one_process_gradients(tmp_path):
    from conftest import build_tiny, images, randomise_top_down

    model = build_tiny("toast", **{"MODEL.TOAST.FOLD": "never"}).double()
    randomise_top_down(model)
    nn.functional.cross_entropy(model.train()(images(4).double()), torch.tensor([0, 1, 2, 3])).backward()
    one = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    for port, fold in ((29561, "never"), (29562, "always")):
        out = tmp_path / f"{fold}.pt"
        torch.multiprocessing.spawn(_ddp_gradients, args=(2, port, fold, str(out)), nprocs=2, join=True)
        two = torch.load(out, weights_only=True)
        assert set(two) == set(one) and any(n.startswith("top_down.") for n in one)
        for name in one:
            torch.testing.assert_close(two[name], one[name], rtol=1e-9, atol=1e-12, msg=f"{fold}: {name}")
