"""The language training entry point through the Hugging Face Trainer, on a tiny local model."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from lm_helpers import refused, save_tiny_llama
from test_lm_data import tokenizer  # noqa: F401  (fixture)

from language_generation.config import load_config
from language_generation.train import train


@pytest.fixture
def local_model(tmp_path, tokenizer):  # noqa: F811
    folder = save_tiny_llama(tmp_path / "tiny-llama", tokenizer)
    data = tmp_path / "alpaca.json"
    data.write_text(
        json.dumps(
            [
                {"instruction": "add 2 and 3", "input": "", "output": "5"},
                {"instruction": "say hi", "input": "", "output": "hi !"},
            ]
            * 8
        )
    )
    return folder, data


def opts(folder, data, out, steps):
    return [
        "MODEL.NAME_OR_PATH",
        str(folder),
        "DATA.PATH",
        str(data),
        "DATA.EVAL_FRACTION",
        "0.25",
        "OUTPUT_DIR",
        str(out),
        "TRAIN.MAX_STEPS",
        str(steps),
        "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE",
        "4",
        "TRAIN.LEARNING_RATE",
        "0.01",
        "TRAIN.SAVE_STEPS",
        "2",
        "TRAIN.LOGGING_STEPS",
        "1",
        "TRAIN.USE_CPU",
        "True",
    ]


def test_toast_training_writes_the_adapter_and_run_files(local_model, tmp_path):
    folder, data = local_model
    out = tmp_path / "run"
    first = train(load_config("", opts(folder, data, out, 2)))
    assert first["global_step"] == 2 and first["trainable_params"] == 2 * 3 * 32 * 32 + 32
    for name in (
        "adapter.safetensors",
        "adapter_config.json",
        "config.yaml",
        "results.json",
        "trainer_state.json",
        "tokenizer_config.json",
        "log.txt",
        "metrics.jsonl",
        "curves.png",
    ):
        assert (out / name).is_file(), name
    assert not (out / "model.safetensors").exists()  # the base model is never copied
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("eval_loss" in entry for entry in history)  # evaluated during training (held-out split)
    assert first["perplexity"] > 1
    log = (out / "log.txt").read_text()
    assert "example 0 ([masked] tokens take no loss)" in log and ("]5</s>" in log or "]hi !</s>" in log)
    assert "12 training examples, 4 held out" in log and "TRANSFER_TYPE: toast" in log  # split sizes, config
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2] and any("eval_loss" in m for m in metrics)
    assert all("learning_rate" in m for m in metrics if "loss" in m)
    run = json.loads((out / "results.json").read_text())["run"]
    assert run["packages"]["transformers"] and "git_commit" in run
    assert run["inputs"]["data"]["files"] == {data.name: hashlib.sha256(data.read_bytes()).hexdigest()[:16]}
    assert train(load_config("", opts(folder, data, out, 2))) == first  # the same command: reported, not rerun


def test_trainer_with_gradient_checkpointing(local_model, tmp_path):
    folder, data = local_model
    run = [*opts(folder, data, tmp_path / "gc", 1), "TRAIN.GRADIENT_CHECKPOINTING", "True"]
    assert train(load_config("", run))["global_step"] == 1


def test_unknown_training_argument_is_named():
    with pytest.raises(ValueError, match="TRAIN.LEARNING_RAT"):
        load_config("", ["TRAIN.LEARNING_RAT", "0.1"])


@pytest.mark.parametrize(
    "name", ["llama7b_toast", "llama7b_toast-lite", "llama7b_lora", "llama7b_end2end", "demo_smollm2"]
)
def test_shipped_language_configs_load_into_training_arguments(name):
    from pathlib import Path

    from language_generation.train import training_arguments

    repo = Path(__file__).resolve().parents[1]
    folder = repo / "language_generation" / "demo" if name == "demo_smollm2" else repo / "configs" / "alpaca"
    path = str(folder / f"{name}.yaml")
    cfg = load_config(path, ["OUTPUT_DIR", "/tmp/x"])
    if name.startswith("llama7b"):
        assert cfg.TRAIN.BF16 and cfg.TRAIN.TF32 and cfg.MODEL.TRANSFER_TYPE == name.split("_", 1)[1]
        cfg = load_config(path, ["OUTPUT_DIR", "/tmp/x", "TRAIN.BF16", "False", "TRAIN.TF32", "False"])  # no GPU here
    args = training_arguments(cfg)
    if name.startswith("llama7b"):
        assert args.gradient_accumulation_steps == 12 and args.learning_rate == 2e-5 and args.warmup_steps == 0.03


def test_demo_tasks_hold_out_words_and_sums():
    from language_generation.demo.tasks import FAMILIES, make_split

    held = make_split(10, seed=1, held_out=True)
    train_records = make_split(80, seed=0, held_out=False, exclude={r["instruction"] + r["input"] for r in held})
    assert len(held) == 10 * len(FAMILIES) and len(train_records) == 80 * len(FAMILIES)
    seen = {r["instruction"] + r["input"] for r in train_records}
    assert not any(r["instruction"] + r["input"] in seen for r in held)
    add = next(r for r in held if r["family"] == "add")
    import re

    a, b = (int(x) for x in re.findall(r"\d+", add["instruction"]))
    assert add["output"] == str(a + b)


@pytest.mark.parametrize("name", ["train_alpaca.sh", "pretune_llama.sh"])
def test_language_script_usage(name):
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / name
    out = subprocess.run(["bash", str(script), "-h"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("usage:")


def test_generate_cli_writes_records(local_model, tmp_path, capsys):
    from language_generation.generate import main as generate_main

    folder, data = local_model
    out = tmp_path / "run"
    train(load_config("", opts(folder, data, out, 1)))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("say hi\nadd 2 and 3\n")
    generate_main(
        [
            "--adapter",
            str(out),
            "--prompts-file",
            str(prompts),
            "--output",
            str(tmp_path / "gen.json"),
            "GENERATE.MAX_NEW_TOKENS",
            "3",
            "GENERATE.TEMPERATURE",
            "0.0",
            "MODEL.NAME_OR_PATH",
            str(folder),
        ]
    )
    records = json.loads((tmp_path / "gen.json").read_text())
    assert [r["instruction"] for r in records] == ["say hi", "add 2 and 3"]
    assert all(isinstance(r["output"], str) for r in records)
    with refused(capsys, "give --prompt TEXT or --prompts-file FILE"):
        generate_main(["MODEL.NAME_OR_PATH", str(folder)])


def test_missing_pad_token_is_handled_and_logged(local_model, caplog):
    from transformers import AutoTokenizer

    from language_generation.model import build_tokenizer

    folder, _ = local_model
    tok = AutoTokenizer.from_pretrained(folder)
    tok.pad_token = None
    tok.save_pretrained(folder)
    with caplog.at_level("INFO"):
        loaded = build_tokenizer(load_config("", ["MODEL.NAME_OR_PATH", str(folder)]))
    assert loaded.pad_token == loaded.eos_token and "has no pad token" in caplog.text


def test_pretune_then_tune_from_its_adapter(local_model, tmp_path):
    from safetensors.torch import load_file

    from language_generation.pretune import main as pretune_main

    folder, _ = local_model
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(["hello world . say hi ! add 2 and 3 5 ."] * 60))
    pretune_main(
        [
            "MODEL.NAME_OR_PATH",
            str(folder),
            "DATA.PATH",
            str(corpus),
            "DATA.BLOCK_SIZE",
            "16",
            "DATA.EVAL_FRACTION",
            "0.0",
            "OUTPUT_DIR",
            str(tmp_path / "pre"),
            "TRAIN.MAX_STEPS",
            "3",
            "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE",
            "4",
            "TRAIN.LEARNING_RATE",
            "0.01",
            "TRAIN.USE_CPU",
            "True",
        ]
    )
    state = json.loads((tmp_path / "pre" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    pre = load_file(str(tmp_path / "pre" / "adapter.safetensors"))
    run = [*opts(folder, local_model[1], tmp_path / "tune", 1), "MODEL.TOPDOWN_WEIGHTS", str(tmp_path / "pre")]
    from language_generation.model import build_model

    model = build_model(load_config("", run))
    assert torch.equal(model.top_down.decoders[1].down.weight, pre["top_down.decoders.1.down.weight"])
    assert not model.top_down.decoders[1].down.weight.requires_grad  # tuning trains B_i and p only


def _corpus(path, documents=40, seed=0):
    """Random sentences over the test tokenizer's words: blocks of text that differ from one another."""
    import random

    words = "hello world say hi add 2 and 3 5 . the task input response user assistant , ? ! 1 4 6 7 8 9 0".split()
    rng = random.Random(seed)
    path.write_text("\n\n".join(" ".join(rng.choice(words) for _ in range(30)) for _ in range(documents)))
    return path


def _recon_run(folder, corpus, out, batch, accumulation, data=("DATA.FORMAT", "text", "DATA.BLOCK_SIZE", "16")):
    """Two SGD steps of pre-tuning (CE + 1.0 × R unscaled, so R weighs; A_i, B_i, p trained), constant lr, no clipping."""
    run = [
        "MODEL.NAME_OR_PATH", str(folder), "DATA.PATH", str(corpus), *data,
        "DATA.EVAL_FRACTION", "0.0", "OUTPUT_DIR", str(out),
        "MODEL.TOAST.RECON_COEF", "1.0", "MODEL.TOAST.RECON_SCALE", "1.0",
        "MODEL.TOAST.TRAIN", "['down', 'to_value', 'prompt']",
        "TRAIN.MAX_STEPS", "2", "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", str(batch),
        "TRAIN.GRADIENT_ACCUMULATION_STEPS", str(accumulation), "TRAIN.OPTIM", "sgd",
        "TRAIN.LEARNING_RATE", "0.5", "TRAIN.LR_SCHEDULER_TYPE", "constant", "TRAIN.MAX_GRAD_NORM", "0.0",
        "TRAIN.LOGGING_STEPS", "1", "TRAIN.SAVE_STRATEGY", "no", "TRAIN.USE_CPU", "True",
    ]  # fmt: skip
    train(load_config("", run))
    from safetensors.torch import load_file

    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [e["loss"] for e in history if "loss" in e], load_file(str(out / "adapter.safetensors"))


def test_reconstruction_loss_keeps_its_weight_under_gradient_accumulation(local_model, tmp_path):
    """4 accumulation steps × batch 1 train what batch 4 trains: the Trainer divides the CE by the tokens of
    the whole step, so R (a mean per micro-batch) is weighted by each micro-batch's share; unweighted, it
    counted 4 times."""
    folder, _ = local_model
    corpus = _corpus(tmp_path / "corpus.txt")
    losses_1x4, whole = _recon_run(folder, corpus, tmp_path / "b4", batch=4, accumulation=1)
    losses_4x1, split = _recon_run(folder, corpus, tmp_path / "b1x4", batch=1, accumulation=4)
    assert len(losses_1x4) == 2
    torch.testing.assert_close(torch.tensor(losses_4x1), torch.tensor(losses_1x4), rtol=1e-5, atol=0)
    for name, tensor in whole.items():
        torch.testing.assert_close(split[name], tensor, rtol=1e-5, atol=1e-7, msg=name)


def test_reconstruction_loss_is_exact_under_accumulation_with_padded_examples(local_model, tmp_path):
    """Instruction examples of unequal length, padded: R is a sum over real tokens divided by the real tokens
    of the whole step, so 4 × batch 1 equals batch 4 (a per-micro-batch mean over every position, padding
    included, gave a different loss and adapter)."""
    import random

    folder, _ = local_model
    words = "hello world say hi add 2 and 3 5 . the task , ? ! 1 4 6 7 8 9 0".split()
    rng = random.Random(0)
    records = [
        {
            "instruction": " ".join(rng.choice(words) for _ in range(rng.randint(1, 12))),
            "input": "",
            "output": " ".join(rng.choice(words) for _ in range(rng.randint(1, 6))),
        }
        for _ in range(8)
    ]
    data = tmp_path / "uneven.json"
    data.write_text(json.dumps(records))
    alpaca = ("DATA.FORMAT", "alpaca")
    losses_1x4, whole = _recon_run(folder, data, tmp_path / "b4", batch=4, accumulation=1, data=alpaca)
    losses_4x1, split = _recon_run(folder, data, tmp_path / "b1x4", batch=1, accumulation=4, data=alpaca)
    assert len(losses_1x4) == 2
    torch.testing.assert_close(torch.tensor(losses_4x1), torch.tensor(losses_1x4), rtol=1e-5, atol=0)
    for name, tensor in whole.items():
        torch.testing.assert_close(split[name], tensor, rtol=1e-5, atol=1e-7, msg=name)


def test_pretune_defaults_are_the_original_recipe_and_a_config_file_overrides_them(tmp_path):
    from language_generation.pretune import PRETUNE_DEFAULTS

    cfg = load_config("", [], defaults=PRETUNE_DEFAULTS)
    assert cfg.DATA.MAX_RECORDS == 200_000 and cfg.DATA.BLOCK_SIZE == 512 and cfg.DATA.EVAL_FRACTION == 0.0
    assert (cfg.TRAIN.LEARNING_RATE, cfg.TRAIN.NUM_TRAIN_EPOCHS) == (3e-5, 1.0)
    assert (cfg.TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE, cfg.TRAIN.GRADIENT_ACCUMULATION_STEPS) == (3, 12)
    mine = tmp_path / "mine.yaml"
    mine.write_text("TRAIN:\n  LEARNING_RATE: 1.0e-4\n")
    assert load_config(str(mine), [], defaults=PRETUNE_DEFAULTS).TRAIN.LEARNING_RATE == 1e-4


def test_end2end_on_a_bf16_base_trains_fp32_master_weights_under_bf16_autocast(local_model, tmp_path):
    """Full fine-tuning on a bf16 base: the Trainer's bf16 autocast computes, the weights stay fp32 (saved so);
    without TRAIN.BF16 the run is refused by name before the model loads, not trained in fp32 silently."""
    folder, data = local_model
    common = [
        *opts(folder, data, tmp_path / "refused", 1),
        "MODEL.TRANSFER_TYPE",
        "end2end",
        "MODEL.DTYPE",
        "bfloat16",
    ]
    with pytest.raises(ValueError, match="set TRAIN.BF16 True, or MODEL.TRAINABLE_DTYPE base"):
        train(load_config("", common))
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "run"
    cfg = load_config("", [*common, "OUTPUT_DIR", str(out), "TRAIN.BF16", "True", "TRAIN.LEARNING_RATE", "2e-5"])
    train(cfg)
    from safetensors.torch import load_file

    saved = load_file(out / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float32}
    base = load_file(folder / "model.safetensors")
    moved = [k for k in base if not torch.equal(saved[k], base[k].float())]
    assert len(moved) == len(base)  # a 2e-5 step moved every tensor (held in bf16, most entries would not move)
