"""Wall time of one VTAB-1k final run at its real split sizes: the original's protocol against the new default
and the caches, all in one process (ratios, so that a shared machine's load hits every variant alike).

A generated task in the VTAB-1k layout (1,000 training images = train800val200, val200, 10,000 test
images; the class is the dominant colour under noise) is trained through the real ``train`` entry point:

- TOAST, ``--epochs`` epochs: test after every epoch, no cache (the original's behaviour); the new default
  (``SOLVER.TEST_PERIOD 0``: test at the end, on the last and the best-validation model); the default
  with ``MODEL.TOAST.CACHE_FIRST_PASS``; and a second cached run (another grid point), which finds the cache.
  The four must give the same ``results.json`` numbers, except that the cached pass 1 has no stochastic
  depth (``--drop-path 0`` makes all four identical up to the fp16 storage of the cache).
- The linear probe, ``--probe-epochs`` epochs, with and without ``DATA.CACHE_FEATURES``.
- TOAST's training step with the first-pass cache against ``benchmarks/step_time.py``'s floor (one
  no-grad forward plus one forward/backward to the activations), interleaved, median over rounds.

    python benchmarks/protocol_time.py          # CPU: vit_tiny_patch16_224 at 16 px, 100 train / 1,000 test
    python benchmarks/protocol_time.py --gpu    # GPU: vit_base_patch16_224 at 224 px, 1,000 / 10,000, bf16

The CPU defaults keep the protocol's proportions (test = 10 × train, 10 TOAST epochs, 100 probe epochs) at
a tenth of its size, so that the run ends in minutes on a loaded 2-core machine.

Weights are random (nothing is downloaded); timing does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from step_time import _floor_step  # noqa: E402
from timing import interleaved_medians  # noqa: E402

from visual_classification.config import (
    get_cfg,  # noqa: E402
    load_config,  # noqa: E402
)
from visual_classification.engine import feature_cache  # noqa: E402
from visual_classification.models.build import build_model  # noqa: E402
from visual_classification.train import train  # noqa: E402

CLASSES = 10
COMPARED = ("best_val_top1", "best_epoch", "test_top1", "final_val_top1", "final_test_top1")


def write_task(root: Path, sizes: dict[str, int], image_px: int) -> Path:
    """A VTAB-1k-layout task of small noisy colour images (reused when it exists with these sizes)."""
    task = root / "generated"
    stamp = task / "sizes.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == {**sizes, "px": image_px}:
        return root
    rng = np.random.default_rng(0)
    colours = rng.integers(30, 226, (CLASSES, 3))
    lines = {}
    for split, count in sizes.items():
        rows = []
        for i in range(count):
            label = int(rng.integers(CLASSES))
            pixels = np.clip(colours[label] + rng.normal(0, 60, (image_px, image_px, 3)), 0, 255).astype(np.uint8)
            rel = f"images/{split}/{i}.png"
            (task / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(task / rel)
            rows.append(f"{rel} {label}")
        lines[split] = rows
    lines["train800val200"] = lines["train800"] + lines["val200"]
    for split, rows in lines.items():
        (task / f"{split}.txt").write_text("\n".join(rows) + "\n")
    stamp.write_text(json.dumps({**sizes, "px": image_px}))
    return root


def run_variant(args, data: Path, out: Path, transfer: str, epochs: int, **extra) -> tuple[float, dict]:
    opts = {
        "MODEL.BACKBONE": args.backbone,
        "MODEL.TRANSFER_TYPE": transfer,
        "MODEL.DROP_PATH_RATE": args.drop_path,
        "MODEL.HEAD_INIT": "trunc_normal",
        "DATA.DATAPATH": str(data),
        "DATA.NAME": "generated",
        "DATA.NUMBER_CLASSES": CLASSES,
        "DATA.CROPSIZE": args.size,
        "DATA.BATCH_SIZE": args.batch,
        "DATA.CACHE_IMAGES": False,  # as configs/vtab/: images are decoded when read
        "DATA.NUM_WORKERS": args.workers,
        "SOLVER.OPTIMIZER": "adamw",
        "SOLVER.BASE_LR": 1e-3 if transfer == "linear" else 1e-4,
        "SOLVER.HEAD_LR_MULT": 1.0 if transfer == "linear" else 100.0,
        "SOLVER.WEIGHT_DECAY": 1e-4,
        "SOLVER.TOTAL_EPOCH": epochs,
        "SOLVER.WARMUP_EPOCH": 1,
        "SOLVER.LOG_EVERY_N": 10**6,
        "OUTPUT_DIR": str(out),
        "SEED": 0,
        **extra,
    }
    cfg = load_config("", [str(x) for kv in opts.items() for x in kv])
    start = time.perf_counter()
    results = train(cfg)
    return time.perf_counter() - start, results


def step_ratio(args) -> dict[str, float]:
    """Median step times: the floor, TOAST, and TOAST with its first pass cached (tokens given)."""
    cfg = get_cfg()
    cfg.MODEL.BACKBONE, cfg.DATA.CROPSIZE, cfg.DATA.NUMBER_CLASSES = args.step_backbone, args.step_size, CLASSES
    cfg.MODEL.DROP_PATH_RATE = args.drop_path
    device = torch.device("cuda" if args.gpu else "cpu")
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    images = torch.randn(args.step_batch, 3, args.step_size, args.step_size, device=device)
    labels = torch.randint(0, CLASSES, (args.step_batch,), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.gpu)
    with torch.no_grad(), autocast:
        model.eval()
        tokens = model.backbone.forward_features(images).to(torch.float16).float()
        model.train()

    def floor():
        with autocast:
            _floor_step(model, images, labels)

    def toast(first_pass=None):
        with autocast:
            loss = F.cross_entropy(model(images, first_pass=first_pass).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    lora_cfg = cfg.clone()
    lora_cfg.MODEL.TRANSFER_TYPE = "lora"
    torch.manual_seed(0)
    lora = build_model(lora_cfg).to(device).train()
    lora_optimizer = torch.optim.SGD([p for p in lora.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)

    def lora_step():
        with autocast:
            loss = F.cross_entropy(lora(images).float(), labels)
        loss.backward()
        lora_optimizer.step()
        lora_optimizer.zero_grad(set_to_none=True)

    steps = {"floor": floor, "toast": toast, "toast_cached": lambda: toast(tokens), "lora": lora_step}
    return interleaved_medians(steps, args.warmup, args.iters, device.type)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--gpu", action="store_true", help="the real size on a GPU: ViT-B/16 at 224 px, 1,000 / 10,000"
    )
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--size", type=int, default=None, help="crop size")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--train", type=int, default=None, help="train800val200 images (4:1); CPU 100, GPU 1,000")
    parser.add_argument("--test", type=int, default=None, help="test images; CPU 1,000, GPU 10,000")
    parser.add_argument("--workers", type=int, default=None, help="DATA.NUM_WORKERS; CPU 0, GPU 8")
    parser.add_argument("--epochs", type=int, default=10, help="TOAST final-run epochs")
    parser.add_argument("--probe-epochs", type=int, default=100, help="linear-probe epochs")
    parser.add_argument("--drop-path", type=float, default=0.1, help="MODEL.DROP_PATH_RATE (VTAB's 0.1)")
    parser.add_argument("--step-backbone", default=None)
    parser.add_argument("--step-size", type=int, default=None)
    parser.add_argument("--step-batch", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--out", default="output/benchmarks/protocol", help="generated task and runs")
    args = parser.parse_args()
    gpu_defaults = ("vit_base_patch16_224", 224, 32, "vit_base_patch16_224", 224, 32, 1000, 10000, 8)
    cpu_defaults = ("vit_tiny_patch16_224", 16, 32, "vit_small_patch16_224", 112, 8, 100, 1000, 0)
    names = ("backbone", "size", "batch", "step_backbone", "step_size", "step_batch", "train", "test", "workers")
    for name, value in zip(names, gpu_defaults if args.gpu else cpu_defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.gpu and not torch.cuda.is_available():
        sys.exit("error: --gpu, but torch sees no CUDA device")

    train_800 = args.train * 4 // 5
    data = write_task(
        Path(args.out) / "data", {"train800": train_800, "val200": args.train - train_800, "test": args.test}, 32
    )
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir=args.out))
    rows = []

    def measure(label, transfer, epochs, **extra):
        print(f"[protocol_time] {label} ...", file=sys.stderr, flush=True)
        seconds, results = run_variant(args, data, runs / f"r{len(rows)}", transfer, epochs, **extra)
        rows.append((label, transfer, seconds, results))
        print(f"[protocol_time] {label}: {seconds:.1f} s, test top-1 {results['final_test_top1']}", flush=True)
        return seconds, results

    original, ref = measure(
        "TOAST, test every epoch, no cache (original)", "toast", args.epochs, **{"SOLVER.TEST_PERIOD": 1}
    )
    default, new = measure("TOAST, new default (test at the end)", "toast", args.epochs)
    feature_cache.clear_memory()
    cached, hit = measure(
        "TOAST, default + first-pass cache", "toast", args.epochs, **{"MODEL.TOAST.CACHE_FIRST_PASS": True}
    )
    reused, _ = measure(
        "TOAST, default + cache found (next grid point)",
        "toast",
        args.epochs,
        **{"MODEL.TOAST.CACHE_FIRST_PASS": True, "SOLVER.BASE_LR": 2e-4},
    )
    lora_run, _ = measure("LoRA, new default (same epochs, data and backbone)", "lora", args.epochs)
    probe, probe_res = measure("linear probe, no cache", "linear", args.probe_epochs)
    probe_cached, probe_cached_res = measure(
        "linear probe, cached features", "linear", args.probe_epochs, **{"DATA.CACHE_FEATURES": True}
    )
    probe_reused, _ = measure(
        "linear probe, cached features found (next grid point)",
        "linear",
        args.probe_epochs,
        **{"DATA.CACHE_FEATURES": True, "SOLVER.BASE_LR": 2e-3},
    )
    steps = step_ratio(args)

    device = (
        torch.cuda.get_device_name() if args.gpu else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"\n{args.backbone} at {args.size} px, batch {args.batch}, {args.train} train / {args.test} test images, "
        f"TOAST {args.epochs} epochs, linear probe {args.probe_epochs} epochs, drop path {args.drop_path}, "
        f"{device}, torch {torch.__version__}\n"
    )
    print("| run | wall time (s) | vs. original | test top-1 (best val / last) |")
    print("|---|---:|---:|---|")
    for label, transfer, seconds, results in rows:
        base = original if transfer in ("toast", "lora") else probe
        print(
            f"| {label} | {seconds:.1f} | {base / seconds:.2f}× | "
            f"{results['test_top1']:.2f} / {results['final_test_top1']:.2f} |"
        )
    same = all(new[k] == ref[k] for k in COMPARED)
    print(f"\nresults.json numbers, test every epoch vs. new default: {'identical' if same else 'DIFFERENT'}")
    print(f"first-pass cache vs. default (pass 1 without stochastic depth): {[(k, hit[k], new[k]) for k in COMPARED]}")
    print(
        f"linear probe: cached {probe / probe_cached:.1f}× faster ({probe / probe_reused:.1f}× when the cache is found); "
        f"test top-1 {probe_cached_res['final_test_top1']:.2f} vs {probe_res['final_test_top1']:.2f}"
    )
    print(
        f"\nstep, {args.step_backbone} at {args.step_size} px, batch {args.step_batch} (median of {args.iters}): "
        f"floor {steps['floor'] * 1000:.0f} ms, TOAST {steps['toast'] * 1000:.0f} ms "
        f"({steps['toast'] / steps['floor']:.2f}× floor), TOAST with cached pass 1 {steps['toast_cached'] * 1000:.0f} ms "
        f"({steps['toast_cached'] / steps['floor']:.2f}× floor)"
    )
    print(
        f"TOAST with pass 1 cached against LoRA: run {reused / lora_run:.2f}× LoRA's wall time (cache found), "
        f"step {steps['toast_cached'] / steps['lora']:.2f}× LoRA's step (goal ≤ 1.05×)"
    )
    print(
        f"targets: default ≥ 4× faster than the original: {original / default:.2f}×; cached step ≤ 0.85× floor: "
        f"{steps['toast_cached'] / steps['floor']:.2f}; cached probe ≥ 20× faster: {probe / probe_cached:.1f}× ({probe / probe_reused:.1f}× found)"
    )


if __name__ == "__main__":
    main()
