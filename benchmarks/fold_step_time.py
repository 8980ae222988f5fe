"""TOAST's training step on the folded and on the layer-by-layer top-down path, against LoRA's, in one run.

For each setting the steps run in turn, one of each per round (median over rounds, so that machine drift hits
them alike): LoRA, TOAST with ``MODEL.TOAST.FOLD never`` (layer by layer) and TOAST with ``MODEL.TOAST.FOLD
always`` (one matrix, formed each step with autograd through it). Vision TOAST has its first pass cached
(``MODEL.TOAST.CACHE_FIRST_PASS``: the tokens are given), so the comparison is pass 2 against LoRA's one pass.
Each ratio stands next to its arithmetic floor, from multiply-adds per token (:func:`vit_floor`,
:func:`lm_floor`), and the rule's choice (:func:`toast.folded_rule.fold_pays`) is printed with the token count.

    python benchmarks/fold_step_time.py            # CPU: ViT-S/16 224 px batch 32; the demo's and the own-data
                                                   # defaults' sizes; SmolLM2-135M's shape at the demo's batch
    python benchmarks/fold_step_time.py --gpu      # CUDA: ViT-B/16 at 224 px, batch 64, bf16 autocast

Weights are random (nothing is downloaded); timing does not depend on them.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from timing import interleaved_medians  # noqa: E402

from toast.folded_rule import fold_pays  # noqa: E402

CLASSES = 10
FOLDS = {"toast": "never", "toast folded": "always"}


def vit_floor(tokens: int, dim: int, folded: bool) -> float:
    """Cached TOAST's step over LoRA's in multiply-adds a token and layer. Both run one frozen pass forward
    (12 C² for q, k, v, the output projection and the MLP, plus 2·N·C for attention scores) and backward to the
    activations (as much again; LoRA's rank-r products are neglected). Layer by layer, TOAST adds A_i and the
    product W_v·B_i, each forward, input gradient and weight gradient (6 C²); folded, one product forward and
    its weight gradient (2 C²), since the mask multiplies after the product. T, the mask and forming the fold
    (L·C²·(C + 2 C) a step, under 1 % at these token counts) are left out."""
    frozen = 2 * (12 * dim * dim + 2 * tokens * dim)
    return (frozen + (2 if folded else 6) * dim * dim) / frozen


def lm_floor(seq: int, dim: int, value_width: int, inner: int, folded: bool) -> float:
    """LM TOAST's step over LoRA's in multiply-adds a token and layer. A frozen decoder layer's forward F is
    2 C² (q, o) + 2·C·Cv (k, v) + 3·C·I (MLP) + C·T (causal attention scores and values, T = sequence length);
    LoRA runs it forward and backward to the activations (2 F); TOAST adds pass 1 without autograd (F), and on
    top: layer by layer, A_i (forward and input gradient, 2 C²) and W_v·B_i (forward, input and weight
    gradients, 3 C·Cv); folded, one C×Cv product forward and its weight gradient (2 C·Cv)."""
    frozen = 2 * dim * dim + 2 * dim * value_width + 3 * dim * inner + seq * dim
    extra = 2 * dim * value_width if folded else 2 * dim * dim + 3 * dim * value_width
    return (3 * frozen + extra) / (2 * frozen)


def _sgd_step(model: torch.nn.Module, loss_of: Callable[[], torch.Tensor], autocast) -> Callable[[], None]:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)

    def step() -> None:
        with autocast:
            loss = loss_of()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def vit_steps(backbone: str, size: int, batch: int, device: torch.device) -> tuple[dict, int, int]:
    """LoRA's step and cached TOAST's on both paths; the tokens an image gives and the width."""
    from visual_classification.config import get_cfg
    from visual_classification.models.build import build_model

    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, CLASSES, (batch,), device=device)
    steps, shape = {}, (0, 0)
    for name, transfer, fold in (("lora", "lora", "never"), *((n, "toast", f) for n, f in FOLDS.items())):
        cfg = get_cfg()
        cfg.MODEL.BACKBONE, cfg.DATA.CROPSIZE, cfg.DATA.NUMBER_CLASSES = backbone, size, CLASSES
        cfg.MODEL.TRANSFER_TYPE, cfg.MODEL.TOAST.FOLD = transfer, fold
        torch.manual_seed(0)
        model = build_model(cfg).to(device).train()
        if transfer == "lora":
            steps[name] = _sgd_step(model, lambda m=model: F.cross_entropy(m(images).float(), labels), autocast)
            continue
        with torch.no_grad(), autocast:
            first_pass = model.backbone.eval().forward_features(images).float()
        model.train()
        shape = (first_pass.shape[1], first_pass.shape[2])
        loss_of = lambda m=model, t=first_pass: F.cross_entropy(m(images, first_pass=t).float(), labels)  # noqa: E731
        steps[name] = _sgd_step(model, loss_of, autocast)
    return steps, *shape


def lm_steps(batch: int, seq: int, device: torch.device) -> tuple[dict, dict]:
    """LoRA's step (q/k/v/o, rank 4) and TOAST's on both paths, on SmolLM2-135M's shape."""
    from lm_step_time import SHAPES
    from transformers import LlamaConfig, LlamaForCausalLM

    from language_generation.config import get_cfg
    from language_generation.methods import TRANSFER_METHODS

    shape = SHAPES["smollm2-135m"]
    ids = torch.randint(0, shape["vocab_size"], (batch, seq), device=device)
    steps = {}
    for name, transfer, fold in (("lora", "lora", "never"), *((n, "toast", f) for n, f in FOLDS.items())):
        cfg = get_cfg()
        cfg.MODEL.TRANSFER_TYPE, cfg.MODEL.TOAST.FOLD = transfer, fold
        torch.manual_seed(0)
        model = TRANSFER_METHODS.lookup(transfer).build(LlamaForCausalLM(LlamaConfig(**shape)).to(device), cfg)
        model.train()
        steps[name] = _sgd_step(
            model, lambda m=model: m(input_ids=ids, labels=ids).loss, torch.autocast("cpu", enabled=False)
        )
    return steps, shape


def row(label: str, tokens: int, pays: bool, medians: dict, floors: tuple[float, float]) -> str:
    return (
        f"| {label} | {tokens:,} | {'fold' if pays else 'layer by layer'} | "
        f"{medians['toast'] / medians['lora']:.3f} | {floors[0]:.3f} | "
        f"{medians['toast folded'] / medians['lora']:.3f} | {floors[1]:.3f} | "
        f"{medians['toast folded'] / medians['toast']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="ViT-B/16 at 224 px, batch 64, bf16 on CUDA")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--no-lm", dest="lm", action="store_false", help="leave out the language model rows")
    args = parser.parse_args()
    device = torch.device("cuda" if args.gpu else "cpu")
    if args.gpu:
        vit = [("ViT-B/16, 224 px, batch 64 (bf16)", "vit_base_patch16_224", 224, 64)]
        where = torch.cuda.get_device_name()
    else:
        vit = [
            ("ViT-S/16, 224 px, batch 32", "vit_small_patch16_224", 224, 32),
            ("demo: DINOv2 ViT-S/14, 84 px, batch 32", "vit_small_patch14_dinov2", 84, 32),
            ("own-data defaults: ViT-B/16, 224 px, batch 32", "vit_base_patch16_224", 224, 32),
        ]
        where = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    lines = [
        f"{where}, torch {torch.__version__}, median of {args.iters} interleaved rounds after {args.warmup} warm-up",
        "",
        "| setting | tokens a step | rule (`auto`) | TOAST / LoRA | floor | TOAST folded / LoRA | floor | folded / layer by layer |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for label, backbone, size, batch in vit:
        steps, tokens, dim = vit_steps(backbone, size, batch, device)
        medians = interleaved_medians(steps, args.warmup, args.iters, device.type)
        pays = fold_pays(tokens * batch, dim, [dim] * 12)
        lines.append(
            row(label, tokens * batch, pays, medians, (vit_floor(tokens, dim, False), vit_floor(tokens, dim, True)))
        )
        print(lines[-1], file=sys.stderr, flush=True)
    if args.lm and not args.gpu:
        for batch, seq in ((8, 128), (2, 128)):
            steps, shape = lm_steps(batch, seq, device)
            medians = interleaved_medians(steps, args.warmup, args.iters, device.type)
            dim = shape["hidden_size"]
            value = dim // shape["num_attention_heads"] * shape["num_key_value_heads"]
            pays = fold_pays(batch * seq, dim, [value] * shape["num_hidden_layers"])
            floors = tuple(lm_floor(seq, dim, value, shape["intermediate_size"], f) for f in (False, True))
            lines.append(row(f"SmolLM2-135M shape, batch {batch} × {seq} tokens", batch * seq, pays, medians, floors))
            print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
