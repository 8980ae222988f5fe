"""Vision prediction throughput: TOAST (two passes, folded feedback as ``predict`` runs it, and unfolded)
against one plain forward of the same timm backbone and head, in one run.

    python benchmarks/predict_time.py                                  # ViT-S/16, 224 px, batch 8
    python benchmarks/predict_time.py --backbone vit_base_patch16_224 --batch 64

Random weights (nothing is downloaded). Rows are timed interleaved (one batch of each per round, median
over rounds), without autograd, in eval mode; on CUDA under bf16 autocast.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from timing import interleaved_medians  # noqa: E402

from visual_classification.config import get_cfg  # noqa: E402
from visual_classification.models.build import build_model  # noqa: E402


def _build(args, transfer: str):
    torch.manual_seed(0)
    cfg = get_cfg()
    cfg.MODEL.BACKBONE = args.backbone
    cfg.MODEL.TRANSFER_TYPE = transfer
    cfg.DATA.CROPSIZE = args.size
    cfg.DATA.NUMBER_CLASSES = args.classes
    return build_model(cfg).to(args.device).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vit_small_patch16_224")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    plain, toast = _build(args, "linear"), _build(args, "toast")  # linear: the backbone and a head, one pass
    images = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device == "cuda")

    def forward(model, folded: bool):
        def run():
            with torch.no_grad(), autocast, toast.folded_feedback() if folded else contextlib.nullcontext():
                return model(images).float().softmax(-1)

        return run

    steps = {
        "plain timm forward (backbone + head)": forward(plain, False),
        "TOAST, folded feedback (predict)": forward(toast, True),
        "TOAST, unfolded": forward(toast, False),
    }
    medians = interleaved_medians(steps, args.warmup, args.iters, args.device)
    device = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"{args.backbone}, batch {args.batch}, {args.size} px, {device}, torch {torch.__version__}, "
        f"median of {args.iters} interleaved rounds after {args.warmup} warm-up\n"
    )
    plain_rate = args.batch / medians["plain timm forward (backbone + head)"]
    print("| prediction | ms / batch | images/s | vs. plain forward |")
    print("|---|---:|---:|---:|")
    for name, seconds in medians.items():
        rate = args.batch / seconds
        print(f"| {name} | {seconds * 1000:.0f} | {rate:.1f} | {rate / plain_rate:.2f} |")


if __name__ == "__main__":
    main()
