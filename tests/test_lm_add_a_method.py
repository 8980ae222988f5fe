"""A transfer method defined outside the package, here, runs through every language command with no other file
changed: ``value-scale``, a learned per-channel scale on each layer's attention values (a forward hook on every
``v_proj`` multiplying its output by a trainable vector that starts at 1), saved as one small safetensors file.

It registers through the public API only (:func:`language_generation.methods.register_transfer`): its config
key with default and range, lr grid, table order, how it builds, which file a run of it holds, how that file is
written (every process gathers, the main process writes) and read back (resume, ``generate``). Then:
``language_generation.train``; a run killed after its first checkpoint and resumed; ``language_generation.generate
--adapter RUN``; a 2-process ``torchrun`` run against 1 process. The language half has no tune or summary command
(lr grids and table order are there for experiments that tune and tabulate), so those are not run.

Run as a script, this file registers the method and runs ``language_generation.train`` (what each ``torchrun``
worker does): ``python tests/test_lm_add_a_method.py [--kill-after-checkpoint] KEY VALUE ...``.
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
from safetensors.torch import load_file, save_file
from test_lm_data import tokenizer  # noqa: F401  (fixture)
from torch import nn
from transformers import PreTrainedModel
from yacs.config import CfgNode

from language_generation.methods import TRANSFER_METHODS, OwnTensors, TransferMethod, register_transfer
from language_generation.toast_install import decoder_layers
from runkit.ranges import Range
from toast.registry import ConfigKey

REPO = Path(__file__).resolve().parents[1]
NAME = "value-scale"
SCALES = "value_scale.safetensors"

# ---------------------------------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------------------------------


def _build(base: PreTrainedModel, cfg: CfgNode) -> nn.Module:
    """Freezes the base and scales every layer's values by a trainable fp32 vector (``MODEL.VALUE_SCALE.INIT``)."""
    for p in base.parameters():
        p.requires_grad_(False)
    projections = [layer.self_attn.v_proj for layer in decoder_layers(base)]
    init = cfg.MODEL.VALUE_SCALE.INIT
    base.value_scales = nn.ParameterList(
        nn.Parameter(torch.full((v.out_features,), init, device=v.weight.device)) for v in projections
    )
    for v, scale in zip(projections, base.value_scales):
        v.register_forward_hook(lambda module, args, out, scale=scale: out * scale.to(out.dtype))
    return base


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"value_scales.{i}": p for i, p in enumerate(model.value_scales)}


def _write(model: nn.Module, folder: Path, state: dict[str, torch.Tensor]) -> None:
    save_file({name: t.contiguous() for name, t in state.items()}, str(folder / SCALES))


def _read(model: nn.Module, folder: Path) -> None:
    saved = load_file(str(folder / SCALES))
    with torch.no_grad():
        for name, p in _state(model).items():
            p.copy_(saved[name])


VALUE_SCALE = TransferMethod(
    name=NAME,
    build=_build,
    config_keys=(
        ConfigKey(
            "MODEL.VALUE_SCALE.INIT",
            1.0,
            "every scale starts here (1: the model starts as the base)",
            Range("MODEL.VALUE_SCALE.INIT", low=0.0, low_open=True),
        ),
    ),
    lr_grid=(1e-1, 3e-2, 1e-2),
    table_order=50,
    description="a learned per-channel scale on the attention values",
    run_weights=(SCALES,),
    own_tensors=OwnTensors(state=_state, write=_write, read=_read),
)


@pytest.fixture(autouse=True, scope="module")
def registered():
    register_transfer(VALUE_SCALE)
    yield
    TRANSFER_METHODS.unregister(NAME)


# ---------------------------------------------------------------------------------------------------
# Through every command
# ---------------------------------------------------------------------------------------------------

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _options(folder: Path, corpus: Path, out: Path, batch: int, steps: int = 4) -> list[str]:
    """Equal-length text blocks, SGD at a constant lr without clipping: 2 × batch 2 and 1 × batch 4 compare."""
    return [
        "MODEL.TRANSFER_TYPE", NAME, "MODEL.NAME_OR_PATH", str(folder), "DATA.PATH", str(corpus),
        "DATA.FORMAT", "text", "DATA.BLOCK_SIZE", "16", "DATA.EVAL_FRACTION", "0.0",
        "DATA.CACHE_DIR", str(folder / "cache"), "OUTPUT_DIR", str(out), "TRAIN.MAX_STEPS", str(steps),
        "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", str(batch), "TRAIN.OPTIM", "sgd", "TRAIN.LEARNING_RATE", "0.5",
        "TRAIN.LR_SCHEDULER_TYPE", "constant", "TRAIN.MAX_GRAD_NORM", "0.0", "TRAIN.LOGGING_STEPS", "1",
        "TRAIN.SAVE_STEPS", "2", "TRAIN.USE_CPU", "True",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tokenizer):  # noqa: F811
    """A tiny LLaMA folder (weights of std 0.2, so the scales get gradients worth comparing) and a text corpus."""
    from lm_helpers import SIZES
    from test_lm_train import _corpus
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("value-scale")
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**{**SIZES, "vocab_size": len(tokenizer)}, initializer_range=0.2))
    base.save_pretrained(root / "tiny-llama")
    tokenizer.save_pretrained(root / "tiny-llama")
    return root / "tiny-llama", _corpus(root / "corpus.txt")


@pytest.fixture(scope="module")
def one_process(tiny):
    """The uninterrupted 1-process run, through ``language_generation.train``."""
    from language_generation.config import load_config
    from language_generation.train import train

    folder, corpus = tiny
    out = folder.parent / "one"
    results = train(load_config("", _options(folder, corpus, out, batch=4)))
    return out, results


def _losses(out: Path) -> list[float]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def _assert_same_run(out: Path, reference: Path) -> None:
    torch.testing.assert_close(torch.tensor(_losses(out)), torch.tensor(_losses(reference)), rtol=1e-5, atol=0)
    mine, theirs = load_file(str(out / SCALES)), load_file(str(reference / SCALES))
    assert mine.keys() == theirs.keys()
    for name, tensor in theirs.items():
        torch.testing.assert_close(mine[name], tensor, rtol=0, atol=1e-6, msg=name)


def _script(*args: str, nproc: int = 0) -> subprocess.CompletedProcess:
    """This file as a script (the method registered, then ``language_generation.train``), plain or under torchrun."""
    launcher = [sys.executable]
    if nproc:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(port)]
    command = [*launcher, str(Path(__file__).resolve()), *args]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)


def test_the_registration_gives_the_config_key_its_range_and_the_run_files():
    from language_generation import run_files as rf
    from language_generation.config import get_cfg, load_config

    assert get_cfg().MODEL.VALUE_SCALE.INIT == 1.0
    with pytest.raises(ValueError, match=r"MODEL.VALUE_SCALE.INIT=0.0 must be > 0"):
        load_config("", ["MODEL.TRANSFER_TYPE", NAME, "MODEL.VALUE_SCALE.INIT", "0"])
    assert SCALES in rf.run_file_names() and NAME in [m.name for m in TRANSFER_METHODS.in_table_order()]


def test_train_writes_the_methods_file_and_only_the_scales_train(one_process):
    out, results = one_process
    scales = load_file(str(out / SCALES))
    assert results["trainable_params"] == sum(t.numel() for t in scales.values()) == 3 * 16  # 3 layers × 2 kv heads
    assert not any(torch.equal(t, torch.ones_like(t)) for t in scales.values())  # trained
    assert not (out / "model.safetensors").exists() and not (out / "adapter.safetensors").exists()


def test_a_killed_run_resumes_to_what_the_uninterrupted_run_trains(tiny, one_process, tmp_path):
    from language_generation.config import load_config
    from language_generation.train import train

    folder, corpus = tiny
    out = tmp_path / "killed"
    options = _options(folder, corpus, out, batch=4)
    killed = _script("--kill-after-checkpoint", *options)
    assert killed.returncode == 9 and (out / "checkpoint-2" / SCALES).is_file(), killed.stderr[-3000:]
    assert not (out / "results.json").exists()
    resumed = train(load_config("", options))
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["global_step"] == 4
    _assert_same_run(out, one_process[0])


def test_generate_loads_the_run_from_its_folder(one_process, tmp_path):
    from language_generation.generate import main as generate
    from language_generation.trained_run import load_trained

    out, _ = one_process
    answers = tmp_path / "answers.json"
    generate(["--adapter", str(out), "--prompt", "say hi", "--output", str(answers), "GENERATE.MAX_NEW_TOKENS", "3",
              "GENERATE.TEMPERATURE", "0"])  # fmt: skip
    assert json.loads(answers.read_text())[0]["instruction"] == "say hi"
    model, _, _ = load_trained(out)
    saved = load_file(str(out / SCALES))
    assert all(torch.equal(p.detach(), saved[name]) for name, p in _state(model).items())


@pytest.mark.distributed
def test_two_processes_train_what_one_process_trains(tiny, one_process, tmp_path):
    folder, corpus = tiny
    out = tmp_path / "two"
    done = _script(*_options(folder, corpus, out, batch=2), nproc=2)
    assert done.returncode == 0, done.stderr[-6000:]
    assert json.loads((out / "results.json").read_text())["engine"] == "ddp (2 processes)"
    _assert_same_run(out, one_process[0])


if __name__ == "__main__":
    register_transfer(VALUE_SCALE)
    from language_generation import train

    if "--kill-after-checkpoint" in sys.argv:
        sys.argv.remove("--kill-after-checkpoint")
        from lm_kill_after_checkpoint import KilledTrainer

        train.ToastTrainer = KilledTrainer
    train.main()
