"""Runs side by side or one after another: the wall time of the same training jobs with ``experiments.jobs``' one
worker (here, every core's threads) and with two workers (one share of the cores each), as a ratio.

A job is what the refocusing experiments queue: build a model, then train it for some steps (random weights
and inputs: the time does not depend on their values). ``vision``: a ViT-S/14 with TOAST at 56 px, batch 16
(the vision experiment's runs); ``lm``: a SmolLM2-135M-shaped LLaMA with TOAST, batch 4 x 192 tokens (the
language experiment's runs).

    python benchmarks/parallel_jobs.py                    # 4 jobs of each kind, 1 worker then 2
    python benchmarks/parallel_jobs.py --kinds vision --jobs 6 --vision-steps 60
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from experiments.jobs import Job, run_jobs  # noqa: E402


def vision_job(steps: int, seed: int) -> float:
    """Build a ViT-S/14 with TOAST at 56 px, then ``steps`` AdamW steps at batch 16; the job's own seconds."""
    import torch.nn.functional as F

    from visual_classification.config import get_cfg
    from visual_classification.models.build import build_model

    start = time.time()
    torch.manual_seed(seed)
    cfg = get_cfg()
    cfg.MODEL.BACKBONE = "vit_small_patch14_dinov2"
    cfg.MODEL.TRANSFER_TYPE = "toast"
    cfg.DATA.CROPSIZE = 56
    cfg.DATA.NUMBER_CLASSES = 5
    model = build_model(cfg).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    images, labels = torch.randn(16, 3, 56, 56), torch.randint(0, 5, (16,))
    for _ in range(steps):
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.time() - start


def lm_job(steps: int, seed: int) -> float:
    """Build a SmolLM2-135M-shaped LLaMA with TOAST, then ``steps`` AdamW steps on 4 x 192 tokens."""
    from lm_step_time import SHAPES
    from transformers import LlamaConfig, LlamaForCausalLM

    from language_generation.config import get_cfg
    from language_generation.methods.toast import attach_toast

    start = time.time()
    torch.manual_seed(seed)
    cfg = get_cfg()
    cfg.MODEL.TRANSFER_TYPE = "toast"
    model = attach_toast(LlamaForCausalLM(LlamaConfig(**SHAPES["smollm2-135m"])), cfg).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (4, 192))
    for _ in range(steps):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.time() - start


def wall(fn, steps: int, count: int, workers: int) -> tuple[float, float]:
    """Wall seconds of ``count`` jobs with ``workers``, and the mean of the jobs' own seconds."""
    jobs = {f"job {i}": Job(fn, (steps, i)) for i in range(count)}
    start = time.time()
    results = run_jobs(jobs, workers)
    return time.time() - start, sum(results.values()) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=["vision", "lm"], choices=["vision", "lm"])
    parser.add_argument("--jobs", type=int, default=4, help="jobs of each kind (even: both workers stay busy)")
    parser.add_argument("--vision-steps", type=int, default=50)
    parser.add_argument("--lm-steps", type=int, default=4)
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS"):
        sys.exit("error: unset OMP_NUM_THREADS: the one-worker row must use every core's threads")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads in one process", flush=True)  # fmt: skip
    rows = []
    for kind in args.kinds:
        fn, steps = (vision_job, args.vision_steps) if kind == "vision" else (lm_job, args.lm_steps)
        fn(1, 0)  # imports and first-use costs out of the one-worker row
        one, one_job = wall(fn, steps, args.jobs, 1)
        two, two_job = wall(fn, steps, args.jobs, 2)
        rows.append(f"| {kind} | {args.jobs} x {steps} steps | {one:.1f} ({one_job:.1f}) | {two:.1f} ({two_job:.1f}) "
                    f"| {one / two:.2f} |")  # fmt: skip
        print(rows[-1], flush=True)
    print("\n| jobs | each | 1 worker: wall s (s per job) | 2 workers: wall s (s per job) | speed-up |")
    print("|---|---|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
