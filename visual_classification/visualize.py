"""Where the model looks, before and after refocusing:
``python -m visual_classification.visualize --adapter RUN_DIR [--images PATH ...] [--compare RUN_DIR] [KEY VALUE ...]``.

For each image, one PNG grid: the input; TOAST's token selection mask (cosine of first-pass tokens with the
prompt); the last block's CLS-to-patch attention in the first pass (before refocusing) and in the second
(after), head mean and per head, on one colour scale per image; optionally the same for a baseline run
(``--compare``). Titles give each model's predicted class and score and the image's true class (known for
the default images, spread over the classes of the test split, and for ImageFolder paths). The images are
preprocessed as the run's evaluation was (its recorded layout transform and normalisation). The attention is
read through the backbone's own modules: a hook on the last block's ``attn.qkv`` keeps its output, and the
map is ``softmax(q·kᵀ·scale)`` after the block's own q/k norms, so timm's fused attention keeps running.
Grids go to ``<RUN_DIR>/visualize/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from runkit.cli import UserError, user_errors  # noqa: E402
from runkit.files import save_figure  # noqa: E402

from .data import build_task_data  # noqa: E402
from .data.splits import class_name  # noqa: E402
from .models.transfer_model import TransferModel  # noqa: E402
from .trained_run import load_trained_run  # noqa: E402


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


def _title(name: str, title: str, first: bool) -> str:
    """The first panel of a row carries the row's name (model, and its prediction on a second line)."""
    return f"{name}\n{title}" if first else title


def draw(image: np.ndarray, rows: list[tuple[str, dict]], out_png: Path, caption: str = "") -> Path:
    """One grid: per analysed model a row of [input, mask, pass 1 mean, pass 2 mean, pass-labelled heads].

    Every attention panel of the image shares one colour scale (across passes, heads and rows), so pass 1
    and pass 2 compare by eye; the selection mask has its own (it is a cosine, not an attention weight).
    """
    size = image.shape[0]
    heads = rows[0][1]["first"].shape[0]
    columns = 4 + heads
    attention = [found[k] for _, found in rows for k in ("first", "second") if found[k] is not None]
    vmax = max(float(a.max()) for a in attention)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.9 * columns, 2.0 * len(rows) + 0.4), squeeze=False)
    scale = None
    for r, (name, found) in enumerate(rows):
        last_pass = 2 if found["second"] is not None else 1
        last = found["second"] if found["second"] is not None else found["first"]
        panels = [
            ("input", None, False),
            ("selection mask", found["mask"], False),
            ("pass 1: head mean", found["first"].mean(0), True),
            ("pass 2: head mean", found["second"].mean(0) if found["second"] is not None else None, True),
        ]
        panels += [(f"pass {last_pass}: head {h}", last[h], True) for h in range(heads)]
        for c, (title, values, shared) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image)
            if values is not None:
                limits = {"vmin": 0.0, "vmax": vmax} if shared else {}
                heat = ax.imshow(_upsample(values, size), cmap="inferno", alpha=0.55, **limits)
                if shared:
                    scale = heat
                else:
                    fig.colorbar(heat, ax=ax, fraction=0.046, pad=0.02)
            elif title != "input":
                ax.text(
                    0.5,
                    0.5,
                    "n/a",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    color="white",
                    backgroundcolor="black",
                )
            ax.set_title(_title(name, title, c == 0), fontsize=7)
            ax.axis("off")
    if caption:
        fig.suptitle(caption, fontsize=8)
    fig.tight_layout()
    if scale is not None:
        fig.colorbar(scale, ax=axes[:, 2:].ravel().tolist(), fraction=0.02, pad=0.01, label="CLS attention")
    save_figure(fig, out_png, dpi=90, bbox_inches="tight")  # tight: keeps the shared colour bar's labels
    return out_png


def spread_over_classes(samples: list[tuple[Path, int]], count: int) -> list[tuple[Path, int]]:
    """``count`` samples taken in turn from each class (the first of class 0, of class 1, ..., then the second)."""
    by_class: dict[int, list[tuple[Path, int]]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    queues = [by_class[label] for label in sorted(by_class)]
    chosen: list[tuple[Path, int]] = []
    depth = 0
    while len(chosen) < count and any(depth < len(q) for q in queues):
        chosen += [q[depth] for q in queues if depth < len(q)][: count - len(chosen)]
        depth += 1
    return chosen


def _true_label(path: Path, classes: list[str]) -> int | None:
    """An ImageFolder path's class folder, when it names one of the run's classes."""
    name = class_name(path.parent.name)
    return classes.index(name) if name in classes else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", required=True, help="a training run's OUTPUT_DIR (config.yaml + best/)")
    parser.add_argument(
        "--images", nargs="+", default=[], help="image files (default: test images spread over classes)"
    )
    parser.add_argument("--count", type=int, default=4, help="how many test images when --images is not given")
    parser.add_argument("--compare", default="", help="a baseline run's OUTPUT_DIR, drawn as a second row")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of the run's config")
    args = parser.parse_args(argv)
    run_dir = Path(args.adapter)
    with user_errors():
        run = load_trained_run(run_dir, args.opts)
        runs = [(run.model.transfer_type, run)]
        if args.compare:
            baseline = load_trained_run(Path(args.compare), allow=args.opts[0::2])
            runs.append((f"{baseline.model.transfer_type} (compare)", baseline))
        if args.images:
            chosen = [(Path(p), _true_label(Path(p), run.classes)) for p in args.images]
        else:
            listing = run.cfg.clone()
            listing.defrost()
            listing.DATA.VERIFY_IMAGES, listing.DATA.CACHE_IMAGES = False, False  # only the file list is needed
            data = build_task_data(listing, (0.0,) * 3, (1.0,) * 3)
            source = data.test or data.val or data.train
            chosen = spread_over_classes(source.samples, args.count)
        if not hasattr(run.model, "top_down"):
            print("note: this run has no top-down path; only its attention is drawn")
        out_dir = run_dir / "visualize"
        for i, (path, label) in enumerate(chosen):
            try:
                pixels = run.pixels(path)
            except OSError as err:  # load_rgb names the file and the decoder's reason
                raise UserError(f"{err}; --images takes image files that Pillow reads") from err
            rows = []
            for name, each in runs:
                batch = each.normalize(each.pixels(path)).unsqueeze(0)
                found = analyse(each.model, batch)
                with torch.no_grad():
                    probs = each.model(batch).float().softmax(-1)[0]
                top = int(probs.argmax())
                rows.append((f"{name}\npredicts {each.classes[top]} ({probs[top]:.2f})", found))
            truth = f"true class: {run.classes[label]}" if label is not None else "true class: unknown"
            written = draw(pixels.permute(1, 2, 0).numpy(), rows, out_dir / f"image_{i}.png", f"{path.name} | {truth}")
            print(f"written: {written}  ({path}; {truth})")


if __name__ == "__main__":
    main()
