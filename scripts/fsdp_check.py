"""The ``Trainer``'s FSDP path on CUDA GPUs (it does not run on the CPU): a tiny random LLaMA trained with TOAST
through ``language_generation.train`` once in one plain process and once under ``torchrun`` with
``TRAIN.FSDP``, killed after checkpoint-2 and resumed; checks that FSDP2 ran (``results.json``'s
``engine``) and that losses and adapter equal the plain run's. Offline (random weights, generated text).

    python scripts/fsdp_check.py [--out output/gpu_check/fsdp] [--nproc N]     # N: GPUs to use (default all)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def build_inputs(root: Path) -> tuple[Path, Path]:
    import torch
    from lm_helpers import SIZES
    from test_lm_data import tokenizer as tokenizer_fixture
    from test_lm_train import _corpus
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer_fixture.__wrapped__()  # the tests' offline word-level tokenizer
    folder = root / "tiny-llama"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**{**SIZES, "vocab_size": len(tokenizer)}, initializer_range=0.2)).save_pretrained(
        folder
    )
    tokenizer.save_pretrained(folder)
    return folder, _corpus(root / "corpus.txt", documents=80)


def options(folder: Path, corpus: Path, out: Path, batch: int) -> list[str]:
    return [
        "MODEL.NAME_OR_PATH", str(folder), "DATA.PATH", str(corpus), "DATA.FORMAT", "text", "DATA.BLOCK_SIZE", "16",
        "DATA.EVAL_FRACTION", "0.0", "OUTPUT_DIR", str(out), "MODEL.TOAST.RECON_COEF", "1.0",
        "MODEL.TOAST.RECON_SCALE", "1.0", "TRAIN.MAX_STEPS", "4", "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", str(batch),
        "TRAIN.OPTIM", "sgd", "TRAIN.OPTIM_ARGS", "momentum=0.9", "TRAIN.LEARNING_RATE", "0.2",
        "TRAIN.LR_SCHEDULER_TYPE", "constant", "TRAIN.MAX_GRAD_NORM", "0.0", "TRAIN.LOGGING_STEPS", "1",
        "TRAIN.SAVE_STRATEGY", "steps", "TRAIN.SAVE_STEPS", "2",
    ]  # fmt: skip


def run(command: list[str], expect_ok: bool = True) -> None:
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if expect_ok and done.returncode != 0:
        sys.exit(f"failed with exit code {done.returncode}: {' '.join(command[:6])} ...")


def losses_and_adapter(out: Path):
    from safetensors.torch import load_file

    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [e["loss"] for e in history if "loss" in e], load_file(str(out / "adapter.safetensors"))


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/gpu_check/fsdp")
    parser.add_argument("--nproc", type=int, default=0)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("fsdp_check.py needs CUDA GPUs (FSDP through the Trainer does not run on the CPU)")
    nproc = args.nproc or torch.cuda.device_count()
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    folder, corpus = build_inputs(root)
    global_batch = 4 if 4 % nproc == 0 else nproc
    run([sys.executable, "-m", "language_generation.train", *options(folder, corpus, root / "one", global_batch)])
    fsdp = [*options(folder, corpus, root / "fsdp", global_batch // nproc), "TRAIN.FSDP", "full_shard auto_wrap",
            "TRAIN.FSDP_CONFIG", str(REPO / "configs" / "fsdp" / "llama.json")]  # fmt: skip
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    run([*launch, str(REPO / "tests" / "lm_kill_after_checkpoint.py"), *fsdp], expect_ok=False)
    assert (root / "fsdp" / "checkpoint-2" / "trainer_state.json").is_file(), "no checkpoint-2 before the kill"
    run([*launch, "-m", "language_generation.train", *fsdp])
    results = json.loads((root / "fsdp" / "results.json").read_text())
    assert results["engine"] == "fsdp2", f"FSDP did not run: engine {results['engine']!r}"
    assert results["resumed_from"].endswith("checkpoint-2"), results["resumed_from"]
    (one_losses, one_adapter), (losses, adapter) = losses_and_adapter(root / "one"), losses_and_adapter(root / "fsdp")
    loss_gap = max(abs(a - b) / abs(a) for a, b in zip(one_losses, losses))
    adapter_gap = max((adapter[n] - t).abs().max().item() for n, t in one_adapter.items())
    print(f"FSDP2 through the Trainer, {nproc} GPU(s) ({torch.cuda.get_device_name()}), killed after step 2 and "
          f"resumed, vs 1 plain process: losses max relative gap {loss_gap:.1e}, adapter max absolute gap "
          f"{adapter_gap:.1e}")  # fmt: skip
    assert len(losses) == len(one_losses) == 4 and loss_gap < 1e-4 and adapter_gap < 1e-5


if __name__ == "__main__":
    main()
