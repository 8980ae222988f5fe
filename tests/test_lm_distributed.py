"""ZeRO-3 and FSDP2 on the CPU, 2 processes (gloo) against 1 plain process, on a tiny LLaMA with TOAST.

A_i, B_i and p train with the reconstruction loss on, so every top-down tensor and the loss weighting are
exercised; 4 steps of SGD with momentum 0.9 (optimizer state to resume), constant lr, no clipping, 2
processes × batch 2 against 1 process × batch 4 on the same equal-length blocks. Each test asserts which
engine ran (``results.json``'s ``engine`` from the ``Trainer``; for FSDP2 that the tensors are DTensors),
and prints the line the README's table quotes.

- ZeRO-3 (with and without offload) runs through ``language_generation.train`` under ``torchrun``, every
  tensor partitioned (persistence threshold 0, as a 7B model's are), the adapter saved without
  ``stage3_gather_16bit_weights_on_model_save``; resumed after a kill; as two ``torchrun --nnodes 2`` agents.
- FSDP does not run through the ``Trainer`` on the CPU (accelerate wraps the model in DDP there), so
  ``tests/lm_fsdp_worker.py`` wraps the model with ``fully_shard`` per decoder layer and drives the
  ``ToastTrainer``'s training step, adapter save and checkpoint load itself.

Marked ``distributed`` (``-m "not distributed"`` skips them); each launch takes 30-60 s on 2 shared cores.
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

from language_generation.config import load_config
from language_generation.model import build_model
from language_generation.train import train

pytestmark = pytest.mark.distributed
REPO = Path(__file__).resolve().parents[1]
STEPS = 4
LOSS_RTOL = 1e-5  # per-step losses, relative
ADAPTER_ATOL = 1e-6  # adapter entries (weights of size ~0.02-1), absolute
ENV = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _options(folder: Path, corpus: Path, batch: int) -> list[str]:
    return [
        "MODEL.NAME_OR_PATH", str(folder), "DATA.PATH", str(corpus), "DATA.FORMAT", "text",
        "DATA.BLOCK_SIZE", "16", "DATA.EVAL_FRACTION", "0.0", "DATA.CACHE_DIR", str(folder / "cache"),
        "MODEL.TOAST.RECON_COEF", "1.0", "MODEL.TOAST.RECON_SCALE", "1.0", "TRAIN.MAX_STEPS", str(STEPS),
        "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", str(batch), "TRAIN.OPTIM", "sgd", "TRAIN.OPTIM_ARGS", "momentum=0.9",
        "TRAIN.LEARNING_RATE", "0.2", "TRAIN.LR_SCHEDULER_TYPE", "constant", "TRAIN.MAX_GRAD_NORM", "0.0",
        "TRAIN.LOGGING_STEPS", "1", "TRAIN.SAVE_STRATEGY", "no", "TRAIN.USE_CPU", "True",
    ]  # fmt: skip


def _result(out: Path) -> tuple[list[float], dict[str, torch.Tensor]]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [e["loss"] for e in history if "loss" in e], load_file(str(out / "adapter.safetensors"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tokenizer):  # noqa: F811
    """A tiny LLaMA folder, a corpus, the adapter before training and the one-process reference run."""
    from lm_helpers import SIZES
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("distributed")
    folder = root / "tiny-llama"
    torch.manual_seed(0)  # weights of std 0.2, so that the top-down path gets gradients worth comparing
    base = LlamaForCausalLM(LlamaConfig(**{**SIZES, "vocab_size": len(tokenizer)}, initializer_range=0.2))
    base.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    corpus = _corpus(root / "corpus.txt")
    cfg = load_config("", [*_options(folder, corpus, batch=4), "OUTPUT_DIR", str(root / "one")])
    set_seed(cfg.SEED)
    start = {n: t.detach().clone() for n, t in build_model(cfg).adapter_state_dict().items()}
    results = train(cfg)
    assert results["engine"] == "one process"
    return folder, corpus, start, _result(root / "one")


def _launch(command: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def _fail_unless_ok(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        pytest.fail(f"{what} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    assert "terminate called" not in done.stderr, f"{what}: a rank aborted at exit:\n{done.stderr[-3000:]}"


def _torchrun(options: list[str], *, nproc: int = 2, module: str = "language_generation.train") -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
        "--master_port", str(_free_port()), *(["-m", module] if module.startswith("language") else [module]), *options,
    ]  # fmt: skip


def _train(options: list[str], out: Path, **kwargs) -> subprocess.CompletedProcess:
    return _launch(_torchrun([*options, "OUTPUT_DIR", str(out)], **kwargs))


def _assert_same(one, two, start, label: str) -> None:
    (losses_one, adapter_one), (losses_two, adapter_two) = one, two
    assert len(losses_one) == len(losses_two) == STEPS, (losses_one, losses_two)
    loss_gap = max(abs(a - b) / abs(a) for a, b in zip(losses_one, losses_two))
    adapter_gap = max((adapter_two[n] - t).abs().max().item() for n, t in adapter_one.items() if n in adapter_two)
    moved = max((adapter_one[n] - t).abs().max().item() for n, t in start.items())
    assert moved > 100 * ADAPTER_ATOL, f"the steps moved the adapter by {moved:.1e} only: nothing to compare"
    print(f"\n{label}: losses max relative gap {loss_gap:.1e}, adapter max absolute gap {adapter_gap:.1e} "
          f"(1 process: losses {[round(x, 4) for x in losses_one]})")  # fmt: skip
    torch.testing.assert_close(torch.tensor(losses_two), torch.tensor(losses_one), rtol=LOSS_RTOL, atol=0)
    assert adapter_two.keys() == adapter_one.keys()
    for name, tensor in adapter_one.items():
        torch.testing.assert_close(adapter_two[name], tensor, rtol=0, atol=ADAPTER_ATOL, msg=name)


def _zero3_config(tmp_path: Path, name: str) -> Path:
    """A shipped ZeRO-3 file without the whole-model gather at save (the original's own setting), every
    tensor partitioned and released as soon as its module is done, as a 7B model's are."""
    config = json.loads((REPO / "configs" / "deepspeed" / name).read_text())
    config["zero_optimization"].update(
        stage3_param_persistence_threshold=0,
        stage3_max_reuse_distance=0,
        stage3_max_live_parameters=0,
        stage3_gather_16bit_weights_on_model_save=False,
    )
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


# ---------------------------------------------------------------------------------------------------
# DeepSpeed ZeRO-3 through language_generation.train
# ---------------------------------------------------------------------------------------------------

ZERO3_FILES = ["zero3.json", "zero3_offload.json"]


@pytest.mark.parametrize("name", ZERO3_FILES)
def test_zero3_resumed_after_a_kill_trains_what_one_process_trains(tiny, tmp_path, name):
    """A 2-process ZeRO-3 run killed right after checkpoint-2 and re-run with the same command ends with the
    losses and adapter of the uninterrupted 1-process run; the adapter is saved with the whole-model gather
    off, and the parameter count is the whole model's, not the (empty) shards'."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is optional: pip install -r requirements-deepspeed.txt")
    folder, corpus, start, one = tiny
    options = [
        *_options(folder, corpus, batch=2), "TRAIN.DEEPSPEED", str(_zero3_config(tmp_path, name)),
        "TRAIN.SAVE_STRATEGY", "steps", "TRAIN.SAVE_STEPS", "2",
    ]  # fmt: skip
    out = tmp_path / "zero3"
    killed = _train(options, out, module=str(REPO / "tests" / "lm_kill_after_checkpoint.py"))
    assert killed.returncode != 0 and (out / "checkpoint-2" / "trainer_state.json").is_file(), killed.stderr[-3000:]
    assert not (out / "results.json").exists()
    done = _train(options, out)
    _fail_unless_ok(done, "the resumed run")
    results = json.loads((out / "results.json").read_text())
    assert results["engine"] == "deepspeed zero-3" and results["resumed_from"].endswith("checkpoint-2")
    reference = json.loads((folder.parent / "one" / "results.json").read_text())
    assert results["trainable_params"] == reference["trainable_params"] > 0
    _assert_same(one, _result(out), start, f"ZeRO-3 ({name}), killed after step 2 and resumed")


def _agent(node: int, port: int, options: list[str]) -> list[str]:
    """One node's ``torchrun`` agent of a 2-node launch, on loopback (the README shows a cluster's)."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
        "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port),
        "-m", "language_generation.train", *options,
    ]  # fmt: skip


def test_two_nodes_train_what_one_process_trains(tiny, tmp_path):
    """Two ``torchrun --nnodes 2 --nproc_per_node 1`` agents (loopback) with ZeRO-3."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is optional: pip install -r requirements-deepspeed.txt")
    folder, corpus, start, one = tiny
    out, port = tmp_path / "two-nodes", _free_port()
    options = [*_options(folder, corpus, batch=2), "TRAIN.DEEPSPEED", str(_zero3_config(tmp_path, "zero3.json"))]
    agents = [
        subprocess.Popen(_agent(node, port, [*options, "OUTPUT_DIR", str(out)]), cwd=REPO, env=ENV, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for node in (0, 1)
    ]  # fmt: skip
    for node, agent in enumerate(agents):
        stdout, stderr = agent.communicate(timeout=600)
        _fail_unless_ok(subprocess.CompletedProcess(agent.args, agent.returncode, stdout, stderr), f"node {node}")
    assert json.loads((out / "results.json").read_text())["engine"] == "deepspeed zero-3"
    _assert_same(one, _result(out), start, "ZeRO-3, 2 nodes × 1 process (torchrun --nnodes 2)")


def test_every_rank_exits_0_launch_after_launch(tiny, tmp_path):
    """Process groups are destroyed at the end: three 1-step ZeRO-3 launches, every one exits 0 and no rank
    aborts at exit (SIGABRT in one rank)."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is optional: pip install -r requirements-deepspeed.txt")
    folder, corpus, _, _ = tiny
    config = _zero3_config(tmp_path, "zero3.json")
    for launch in range(3):
        options = [*_options(folder, corpus, batch=2), "TRAIN.MAX_STEPS", "1", "TRAIN.DEEPSPEED", str(config)]
        _fail_unless_ok(_train(options, tmp_path / f"run{launch}"), f"launch {launch}")


# ---------------------------------------------------------------------------------------------------
# FSDP2 (fully_shard) through tests/lm_fsdp_worker.py
# ---------------------------------------------------------------------------------------------------


def _worker(tiny, out: Path, *flags: str) -> subprocess.CompletedProcess:
    folder, corpus, _, _ = tiny
    worker = str(REPO / "tests" / "lm_fsdp_worker.py")
    return _launch(_torchrun([*flags, str(out), *_options(folder, corpus, batch=2)], module=worker))


def _worker_result(out: Path) -> tuple[list[float], dict[str, torch.Tensor]]:
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["sharded_fraction"] == 1.0, result  # FSDP2 was on: all DTensors
    return result["losses"], load_file(str(out / "adapter.safetensors"))


@pytest.fixture(scope="module")
def fsdp_reference(tiny, tmp_path_factory):
    """The worker's loop in this one plain process, unsharded."""
    from lm_fsdp_worker import run

    folder, corpus, _, _ = tiny
    out = tmp_path_factory.mktemp("fsdp-one")
    run(out, _options(folder, corpus, batch=4), STEPS)
    return json.loads((out / "result.json").read_text())["losses"], load_file(str(out / "adapter.safetensors"))


def test_fsdp2_two_processes_train_save_and_load_what_one_process_does(tiny, fsdp_reference, tmp_path):
    """``fully_shard`` per decoder layer, 2 processes: the project's training step, the adapter gathered from
    the shards and saved, and loaded back into a fresh sharded model, equal to 1 process."""
    out = tmp_path / "fsdp"
    _fail_unless_ok(_worker(tiny, out), "FSDP2 worker")
    result = json.loads((out / "result.json").read_text())
    assert result["reload_max_gap"] == 0.0, result
    _assert_same(fsdp_reference, _worker_result(out), tiny[2], "FSDP2 fully_shard per layer")


def test_fsdp2_resumed_after_a_kill_trains_what_one_process_trains(tiny, fsdp_reference, tmp_path):
    """Killed right after checkpoint-2 (adapter, optimizer state, RNG), re-run: the same as uninterrupted."""
    out = tmp_path / "fsdp"
    killed = _worker(tiny, out, "--save-steps", "2", "--stop-after", "2")
    assert killed.returncode != 0 and (out / "checkpoint-2" / "state.json").is_file(), killed.stderr[-3000:]
    _fail_unless_ok(_worker(tiny, out, "--save-steps", "2"), "resumed FSDP2 worker")
    _assert_same(fsdp_reference, _worker_result(out), tiny[2], "FSDP2, killed after step 2 and resumed")
