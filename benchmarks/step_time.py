"""Train-step time and peak memory per transfer type, as ratios to TOAST's floor, measured in one run.

The floor is the least any two-pass method must do on a frozen backbone: one forward without autograd
plus one forward/backward whose gradients reach the activations only (no weight gradients). Step times
are taken in one process, interleaved (one step of each method per round, median over rounds), so that
machine drift hits every method alike; peak memory is taken in a fresh process per method.

    python benchmarks/step_time.py                                   # defaults sized for a 2-core CPU
    python benchmarks/step_time.py --backbone vit_base_patch16_224 --batch 8 --size 224

On CUDA the steps run under bf16 autocast and peak memory is ``torch.cuda.max_memory_allocated``;
on CPU it is the process's peak resident set size (VmHWM), model and interpreter included.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from timing import current_peak_mib, in_fresh_process, interleaved_medians  # noqa: E402

from visual_classification.config import get_cfg  # noqa: E402
from visual_classification.models import TRANSFER_METHODS  # noqa: E402
from visual_classification.models.build import build_model  # noqa: E402

FLOOR = "floor"


def _build(args, transfer: str):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE = args.backbone
    cfg.MODEL.TRANSFER_TYPE = "toast" if transfer == FLOOR else transfer
    cfg.DATA.CROPSIZE = args.size
    cfg.DATA.NUMBER_CLASSES = args.classes
    return build_model(cfg)


def _floor_step(model, images, labels):
    """No-grad forward, then a forward/backward on the frozen backbone with gradients to activations only."""
    backbone = model.backbone
    with torch.no_grad():
        backbone.forward_features(images)
    handle = backbone.patch_embed.register_forward_hook(lambda m, a, out: out.detach().requires_grad_())
    try:
        tokens = backbone.forward_features(images)
    finally:
        handle.remove()
    loss = F.cross_entropy(model.head(backbone.forward_head(tokens, pre_logits=True)).float(), labels)
    loss.backward()


def _setup(args, transfer: str):
    """The model, its optimiser and one step function for ``transfer`` (or the floor)."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = _build(args, transfer).to(device).train()
    if transfer == FLOOR:
        for p in model.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9) if params else None
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    labels = torch.randint(0, args.classes, (args.batch,), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with autocast:
            if transfer == FLOOR:
                _floor_step(model, images, labels)
                return
            loss = F.cross_entropy(model(images).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, sum(p.numel() for p in params)


def _peak_memory(args, transfer: str) -> float:
    """Runs in a fresh process: a few steps, then the peak memory they needed."""
    step, _ = _setup(args, transfer)
    for _ in range(2):
        step()
    return current_peak_mib(args.device)


def run(args) -> list[tuple]:
    """Times all methods in one process, interleaved step by step; memory in a fresh process each."""
    names = [FLOOR, *args.types]
    setups = {name: _setup(args, name) for name in names}
    medians = interleaved_medians({n: s[0] for n, s in setups.items()}, args.warmup, args.iters, args.device)
    counts = {n: s[1] for n, s in setups.items()}
    del setups
    rows = []
    for name in names:
        peak = in_fresh_process(_peak_memory, args, name) if args.memory else float("nan")
        rows.append((name, medians[name], peak, counts[name]))
    return rows


def table(args, rows) -> str:
    floor = rows[0][1]
    device = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    lines = [
        f"{args.backbone}, batch {args.batch}, {args.size} px, {device}, torch {torch.__version__}, "
        f"median of {args.iters} interleaved rounds after {args.warmup} warm-up",
        "",
        "| transfer | step (ms) | images/s | step / TOAST floor | step / lora | peak memory (MiB) | trainable params |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lora = next((seconds for transfer, seconds, _, _ in rows if transfer == "lora"), None)
    for transfer, seconds, peak, trainable in rows:
        name = "TOAST floor (no-grad fwd + fwd/bwd to activations)" if transfer == FLOOR else transfer
        vs_lora = f"{seconds / lora:.2f}" if lora else ""
        lines.append(
            f"| {name} | {seconds * 1000:.0f} | {args.batch / seconds:.1f} | {seconds / floor:.2f} | {vs_lora} | "
            f"{peak:.0f} | {trainable:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vit_small_patch16_224")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--types", nargs="+", default=sorted(TRANSFER_METHODS), choices=sorted(TRANSFER_METHODS))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory processes")
    args = parser.parse_args()
    print(table(args, run(args)))


if __name__ == "__main__":
    main()
