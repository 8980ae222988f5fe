"""Where the model looks, before and after refocusing:
``python -m visual_classification.visualize [--adapter RUN_DIR] [--images PATH ...] [--compare RUN_DIR] [KEY VALUE ...]``.

For each image, one PNG grid: the input; TOAST's token selection mask (cosine of first-pass tokens with the
prompt); the last block's CLS-to-patch attention in the first pass (before refocusing) and in the second
(after), head mean and per head; optionally the same for a baseline run (``--compare``). The attention is
read through the backbone's own modules: a hook on the last block's ``attn.qkv`` keeps its output, and the
map is ``softmax(q·kᵀ·scale)`` after the block's own q/k norms, so timm's fused attention keeps running.
Grids go to ``<RUN_DIR>/visualize/`` (or ``OUTPUT_DIR/visualize/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import timm.data  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from yacs.config import CfgNode  # noqa: E402

from toast import load_adapter  # noqa: E402
from toast.files import atomic_path  # noqa: E402

from .data.datasets import load_rgb  # noqa: E402
from .data.transforms import Normalize, pixel_transform  # noqa: E402
from .engine import run_files as rf  # noqa: E402
from .models import TransferModel, build_model  # noqa: E402
from .train import load_config  # noqa: E402


class LastBlockAttention:
    """Keeps the last block's qkv output for every pass and turns it into CLS-to-patch attention maps."""

    def __init__(self, backbone) -> None:
        self.attn = backbone.blocks[-1].attn
        self.prefix = backbone.num_prefix_tokens
        self.outputs: list[torch.Tensor] = []
        self.handle = self.attn.qkv.register_forward_hook(lambda m, a, out: self.outputs.append(out.detach()))

    def maps(self) -> list[torch.Tensor]:
        """One (heads, patches) tensor of CLS attention per pass seen, for the first image of the batch."""
        result = []
        for qkv in self.outputs:
            b, n, _ = qkv.shape
            q, k, _ = qkv.reshape(b, n, 3, self.attn.num_heads, self.attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            q, k = self.attn.q_norm(q), self.attn.k_norm(k)
            weights = (q @ k.transpose(-2, -1) * self.attn.scale).softmax(-1)
            result.append(weights[0, :, 0, self.prefix :])
        return result

    def close(self) -> None:
        self.handle.remove()


def _grid_side(count: int) -> int:
    side = int(round(count**0.5))
    if side * side != count:
        raise ValueError(f"{count} patch tokens do not form a square grid")
    return side


def _upsample(values: torch.Tensor, size: int) -> np.ndarray:
    side = _grid_side(values.numel())
    grid = values.reshape(1, 1, side, side).float()
    return F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def analyse(model: TransferModel, pixels: torch.Tensor) -> dict:
    """Mask and attention maps for one normalised image (1×3×H×W)."""
    probe = LastBlockAttention(model.backbone)
    try:
        with torch.no_grad():
            if hasattr(model, "forward_two_pass"):
                out = model.forward_two_pass(pixels)
                mask = model.top_down.token_mask(out.first_pass_tokens)[0, model.backbone.num_prefix_tokens :, 0]
            else:
                model.forward_features(pixels)
                mask = None
    finally:
        probe.close()
    maps = probe.maps()
    return {"mask": mask, "first": maps[0], "second": maps[1] if len(maps) > 1 else None}


def draw(image: np.ndarray, rows: list[tuple[str, dict]], out_png: Path) -> Path:
    """One grid: per analysed model a row of [input, mask, pass 1 mean, pass 2 mean, heads of pass 2 (or 1)]."""
    size = image.shape[0]
    heads = rows[0][1]["first"].shape[0]
    columns = 4 + heads
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.9 * columns, 2.0 * len(rows)), squeeze=False)
    for r, (name, found) in enumerate(rows):
        panels = [
            ("input", None),
            ("selection mask", found["mask"]),
            ("pass 1: mean", found["first"].mean(0)),
            ("pass 2: mean", found["second"].mean(0) if found["second"] is not None else None),
        ]
        last = found["second"] if found["second"] is not None else found["first"]
        panels += [(f"head {h}", last[h]) for h in range(heads)]
        for c, (title, values) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image)
            if values is not None:
                heat = ax.imshow(_upsample(values, size), cmap="inferno", alpha=0.55)
                fig.colorbar(heat, ax=ax, fraction=0.046, pad=0.02)
            elif title != "input":
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, color="white")
            ax.set_title(f"{name}: {title}" if c == 0 else title, fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out_png


def load_run(run_dir: Path | None, opts: list[str], config_file: str = "") -> tuple[CfgNode, TransferModel]:
    """The model of a finished run (its config.yaml and best adapter), or a fresh one from the config."""
    if run_dir is not None:
        config_file = str(run_dir / rf.CONFIG)
    cfg = load_config(config_file, opts)
    model_cfg = cfg.clone()
    model_cfg.defrost()
    if model_cfg.DATA.NUMBER_CLASSES <= 0 and run_dir is not None:
        import json

        model_cfg.DATA.NUMBER_CLASSES = json.loads((run_dir / rf.BEST / "adapter_config.json").read_text())[
            "num_classes"
        ]
    model = build_model(model_cfg).eval()
    if run_dir is not None:
        load_adapter(model, run_dir / rf.BEST, expect={"backbone": model.backbone_name})
    return cfg, model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", help="used when no --adapter run folder is given")
    parser.add_argument("--adapter", default="", help="a training run's OUTPUT_DIR (config.yaml + best/)")
    parser.add_argument("--images", nargs="+", default=[], help="image files (default: the first test images)")
    parser.add_argument("--count", type=int, default=4, help="how many test images when --images is not given")
    parser.add_argument("--compare", default="", help="a baseline run's OUTPUT_DIR, drawn as a second row")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    run_dir = Path(args.adapter) if args.adapter else None
    try:
        cfg, model = load_run(run_dir, args.opts, args.config_file)
        rows = [(model.transfer_type, model)]
        if args.compare:
            baseline = load_run(Path(args.compare), [])[1]
            rows.append((f"{baseline.transfer_type} (compare)", baseline))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    if not hasattr(model, "top_down"):
        print("note: this run has no top-down path; only its attention is drawn")
    paths = [Path(p) for p in args.images]
    if not paths:
        from .data import build_task_data

        data = build_task_data(cfg, (0.0,) * 3, (1.0,) * 3)
        source = data.test or data.val or data.train
        paths = [p for p, _ in source.samples[: args.count]]
    data_cfg = timm.data.resolve_model_data_config(model.backbone)
    normalize = Normalize(data_cfg["mean"], data_cfg["std"])
    to_pixels = pixel_transform("resize" if cfg.DATA.FORMAT in ("vtab", "auto") else "crop_eval", cfg.DATA.CROPSIZE)
    out_dir = (run_dir or Path(cfg.OUTPUT_DIR)) / "visualize"
    for i, path in enumerate(paths):
        pixels = to_pixels(load_rgb(path))
        batch = normalize(pixels).unsqueeze(0)
        found = [(name, analyse(m, batch)) for name, m in rows]
        image = pixels.permute(1, 2, 0).numpy()
        written = draw(image, found, out_dir / f"image_{i}.png")
        print(f"written: {written}  ({path})")


if __name__ == "__main__":
    main()
