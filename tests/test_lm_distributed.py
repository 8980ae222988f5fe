"""ZeRO-3 and FSDP through ``language_generation.train`` under ``torchrun --nproc_per_node 2`` on the CPU.

Each engine trains a tiny LLaMA with TOAST (A_i, B_i and p trained, reconstruction loss on, so every
top-down tensor and the loss weighting are exercised) for 3 steps with the shipped engine config, 2
processes × batch 2 against one plain process × batch 4 on the same blocks: the per-step losses and the
saved adapter must agree. SGD, constant lr and no clipping, so that float noise is not amplified.
Marked ``distributed`` (``-m "not distributed"`` skips them); each takes about a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_lm_data import tokenizer  # noqa: F401  (fixture)
from test_lm_train import _corpus
from transformers import set_seed

from language_generation.model import build_model
from language_generation.train import load_config, train

pytestmark = pytest.mark.distributed
REPO = Path(__file__).resolve().parents[1]
LOSS_RTOL = 1e-4  # per-step losses, relative
ADAPTER_ATOL = 1e-5  # adapter entries (weights of size ~0.02-1), absolute


def _options(folder: Path, corpus: Path, out: Path, batch: int) -> list[str]:
    return [
        "MODEL.NAME_OR_PATH", str(folder), "DATA.PATH", str(corpus), "DATA.FORMAT", "text",
        "DATA.BLOCK_SIZE", "16", "DATA.EVAL_FRACTION", "0.0", "OUTPUT_DIR", str(out),
        "MODEL.TOAST.RECON_COEF", "1.0", "MODEL.TOAST.RECON_SCALE", "1.0",
        "TRAIN.MAX_STEPS", "3", "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", str(batch), "TRAIN.OPTIM", "sgd",
        "TRAIN.LEARNING_RATE", "0.5", "TRAIN.LR_SCHEDULER_TYPE", "constant", "TRAIN.MAX_GRAD_NORM", "0.0",
        "TRAIN.LOGGING_STEPS", "1", "TRAIN.SAVE_STRATEGY", "no", "TRAIN.USE_CPU", "True",
    ]  # fmt: skip


def _result(out: Path) -> tuple[list[float], dict[str, torch.Tensor]]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [e["loss"] for e in history if "loss" in e], load_file(str(out / "adapter.safetensors"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def runs(tmp_path, tokenizer):  # noqa: F811
    """A tiny LLaMA folder, a corpus, and the one-process reference run."""
    from lm_helpers import SIZES
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "tiny-llama"
    torch.manual_seed(0)  # weights of std 0.2, so that the top-down path gets gradients worth comparing
    base = LlamaForCausalLM(LlamaConfig(**{**SIZES, "vocab_size": len(tokenizer)}, initializer_range=0.2))
    base.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    corpus = _corpus(tmp_path / "corpus.txt")
    cfg = load_config("", _options(folder, corpus, tmp_path / "one", batch=4))
    set_seed(cfg.SEED)
    start = {n: t.detach().clone() for n, t in build_model(cfg).adapter_state_dict().items()}
    train(cfg)
    return folder, corpus, start, _result(tmp_path / "one")


def _torchrun(engine_options: list[str], folder: Path, corpus: Path, out: Path) -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
        "-m", "language_generation.train", *_options(folder, corpus, out, batch=2), *engine_options,
    ]  # fmt: skip
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    print(done.stderr[-3000:])
    print(done.stderr[-3000:])
    print(done.stderr[-3000:])
    print(done.stderr[-3000:])
    print(done.stderr[-3000:])
    print(done.stderr[-3000:])
    print(done.stderr[-3000:])
    if done.returncode != 0:
        pytest.fail(f"torchrun exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")


def _assert_same(one, two, start, engine: str) -> None:
    (losses_one, adapter_one), (losses_two, adapter_two) = one, two
    assert len(losses_one) == 3
    loss_gap = max(abs(a - b) / abs(a) for a, b in zip(losses_one, losses_two))
    adapter_gap = max((adapter_two[n] - t).abs().max().item() for n, t in adapter_one.items() if n in adapter_two)
    moved = max((adapter_one[n] - t).abs().max().item() for n, t in start.items())
    assert moved > 100 * ADAPTER_ATOL, f"the steps moved the adapter by {moved:.1e} only: nothing to compare"
    print(f"{engine}: 2 processes vs 1: losses {losses_two} vs {losses_one} (max relative gap {loss_gap:.1e}), "
          f"adapter max absolute gap {adapter_gap:.1e}")  # fmt: skip
    torch.testing.assert_close(torch.tensor(losses_two), torch.tensor(losses_one), rtol=LOSS_RTOL, atol=0)
    assert adapter_two.keys() == adapter_one.keys()
    for name, tensor in adapter_one.items():
        torch.testing.assert_close(adapter_two[name], tensor, rtol=0, atol=ADAPTER_ATOL, msg=name)


def test_fsdp_two_processes_train_what_one_process_trains(runs, tmp_path):
    folder, corpus, start, one = runs
    fsdp = ["TRAIN.FSDP", "full_shard auto_wrap", "TRAIN.FSDP_CONFIG", str(REPO / "configs" / "fsdp" / "llama.json")]
    _torchrun(fsdp, folder, corpus, tmp_path / "fsdp")
    _assert_same(one, _result(tmp_path / "fsdp"), start, "FSDP")


@pytest.mark.parametrize("config_name", ["zero3.json", "zero3_offload.json"])
def test_zero3_two_processes_train_what_one_process_trains(runs, tmp_path, config_name):
    pytest.importorskip("deepspeed", reason="DeepSpeed is optional: pip install -r requirements-deepspeed.txt")
    folder, corpus, start, one = runs
    config = json.loads((REPO / "configs" / "deepspeed" / config_name).read_text())
    # Test settings: partition every tensor, as a 7B model's are (below 1e5 entries DeepSpeed keeps them whole),
    # and release each one as soon as its module is done.
    config["zero_optimization"].update(
        stage3_param_persistence_threshold=0, stage3_max_reuse_distance=0, stage3_max_live_parameters=0
    )
    (tmp_path / config_name).write_text(json.dumps(config))
    _torchrun(["TRAIN.DEEPSPEED", str(tmp_path / config_name)], folder, corpus, tmp_path / "zero3")
    _assert_same(one, _result(tmp_path / "zero3"), start, f"ZeRO-3 ({config_name})")
