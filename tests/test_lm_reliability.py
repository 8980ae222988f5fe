"""Language half: faults and bad inputs a new user's mistakes or a shared machine produce, each
reproduced on tiny data: a diverging run, inputs changed behind the same path, the Arrow cache, prompt
limits, ShareGPT roles, generate's --output, a run that failed on its data, and out-of-range values."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lm_helpers import refused
from safetensors.torch import load_file
from test_lm_data import tokenizer, write  # noqa: F401  (fixture)
from test_lm_train import local_model, opts  # noqa: F401  (fixture)

from language_generation import generate
from language_generation import run_files as rf
from language_generation.config import get_cfg, load_config
from language_generation.data import build_datasets
from language_generation.records import load_records
from language_generation.train import main, train


def run(local_model, out, steps=2, *extra):  # noqa: F811
    folder, data = local_model
    return train(load_config("", [*opts(folder, data, out, steps), *extra]))


# 1. a non-finite loss stops the run at that step, exits non-zero, and keeps the last good checkpoint
def test_a_diverging_run_stops_at_the_step_and_keeps_the_last_finite_checkpoint(local_model, tmp_path, capsys):  # noqa: F811
    folder, data = local_model
    out = tmp_path / "run"
    command = [*opts(folder, data, out, 8), "TRAIN.LEARNING_RATE", "1e30", "TRAIN.SAVE_STEPS", "1"]
    with refused(capsys, r"^error: non-finite .*TRAIN.LEARNING_RATE") as line:
        main(command)
    message = line[0]
    step = int(message.split(" at step ")[1].split(":")[0])
    assert step < 8 and not (out / "results.json").exists()  # not reported as a finished run
    saved = rf.checkpoint_dirs(out)
    assert saved and rf.checkpoint_step(str(saved[0])) == step - 1 and str(saved[0]) in message
    for checkpoint in saved:  # every checkpoint written holds finite weights: the newest is the one to go back to
        weights = load_file(str(checkpoint / "adapter.safetensors"))
        assert all(torch.isfinite(t).all() for t in weights.values()), checkpoint
    assert all(m.get("loss", 0) == m.get("loss", 0) for m in rf.read_metrics(out))  # no NaN logged
    assert "non-finite" in (out / "log.txt").read_text()


def test_a_non_finite_loss_stops_at_its_step(local_model, tmp_path, monkeypatch, capsys):  # noqa: F811
    """The loss itself going NaN (here forced at step 3) stops before the optimizer applies it."""
    from language_generation.train import ToastTrainer

    real = ToastTrainer.compute_loss

    def nan_from_step_3(self, model, inputs, *args, **kwargs):
        loss = real(self, model, inputs, *args, **kwargs)
        if model.training and self.state.global_step == 2:
            return loss * float("nan")
        return loss

    monkeypatch.setattr(ToastTrainer, "compute_loss", nan_from_step_3)
    folder, data = local_model
    out = tmp_path / "run"
    with refused(capsys, r"non-finite loss nan at step 3: .*checkpoint-2, was written before"):
        main([*opts(folder, data, out, 6), "TRAIN.SAVE_STEPS", "1"])
    assert [p.name for p in rf.checkpoint_dirs(out)] == ["checkpoint-2", "checkpoint-1"]


def _same_size_rewrite(path, old: bytes, new: bytes):
    """Replaces ``old`` by ``new`` (same length) in the file and restores its mtime, as ``cp -p`` would."""
    stat = path.stat()
    content = path.read_bytes()
    assert len(old) == len(new) and old in content
    path.write_bytes(content.replace(old, new))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def _other_base(folder, tokenizer):  # noqa: F811
    """A different tiny model saved over ``folder`` (same files, other weights)."""
    from lm_helpers import save_tiny_llama

    save_tiny_llama(folder, tokenizer, seed=7, tokenizer_files=False)


# 3. inputs changed behind the same path
def test_a_resume_on_a_replaced_data_file_is_refused_naming_it(local_model, tmp_path, capsys):  # noqa: F811
    folder, data = local_model
    out = tmp_path / "run"
    run(local_model, out, 4)
    assert json.loads((out / rf.INPUTS).read_text())["data"]["files"] == {"alpaca.json": _hash(data)}
    assert json.loads((out / "results.json").read_text())["run"]["inputs"]["base_model"]["files"]
    (out / "results.json").unlink()  # as if killed after checkpoint-2
    shutil.rmtree(out / "checkpoint-4")
    _same_size_rewrite(data, b'"output": "5"', b'"output": "6"')
    with refused(capsys, r"trained on other inputs .*DATA.PATH .*alpaca.json: alpaca.json changed"):
        main(opts(folder, data, out, 4))
    again = train(load_config("", opts(folder, data, out, 4)), overwrite=True)  # --overwrite: from scratch
    assert again["resumed_from"] is None and again["run"]["inputs"]["data"]["files"]["alpaca.json"] == _hash(data)


def _hash(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_a_finished_run_whose_base_changed_is_not_reported_as_finished(local_model, tokenizer, tmp_path):  # noqa: F811
    folder, data = local_model
    out = tmp_path / "run"
    run(local_model, out, 2)
    results = (out / "results.json").read_bytes()
    _other_base(folder, tokenizer)
    with pytest.raises(ValueError, match=r"MODEL.NAME_OR_PATH .*tiny-llama: model.safetensors changed"):
        run(local_model, out, 2)
    assert (out / "results.json").read_bytes() == results  # nothing in the run changed


# 3 (generate) and 11: the base model is matched by content, not by its path
def test_generate_matches_the_base_by_content_not_path(local_model, tokenizer, tmp_path, monkeypatch, capsys):  # noqa: F811
    from test_lm_generate import generate_records

    folder, _ = local_model
    out = tmp_path / "run"
    run(local_model, out, 1)
    copy = tmp_path / "elsewhere"
    shutil.copytree(folder, copy)
    answers = generate_records(out, tmp_path, "--prompt", "say hi", "MODEL.NAME_OR_PATH", str(copy))
    assert answers == generate_records(out, tmp_path, "--prompt", "say hi")  # a byte-identical copy is the model
    _other_base(folder, tokenizer)  # another model at the same path
    monkeypatch.setattr(generate, "load_model", lambda *a, **k: pytest.fail("refused only after loading"))
    with refused(capsys, r"trained on the base model .*tiny-llama: model.safetensors changed"):
        generate_records(out, tmp_path, "--prompt", "say hi")


# 4. the Arrow cache is keyed by content
def test_the_arrow_cache_notices_a_same_size_rewrite_with_its_mtime_restored(tmp_path):
    path = write(tmp_path, [{"instruction": "add 2 and 3", "output": "5"}])
    cfg = get_cfg()
    cfg.DATA.PATH, cfg.DATA.CACHE_DIR = str(path), str(tmp_path / "cache")
    assert load_records(cfg)[0][0]["output"] == "5"
    _same_size_rewrite(path, b'"output": "5"', b'"output": "6"')
    assert load_records(cfg)[0][0]["output"] == "6"


# 5. prompt limits, before the weights load, in bounded memory
def test_generate_refuses_or_truncates_a_prompt_longer_than_the_positions(
    local_model,  # noqa: F811
    tmp_path,
    monkeypatch,
    caplog,
    capsys,
):
    from test_lm_generate import generate_records

    out = tmp_path / "run"
    run(local_model, out, 1)
    long = " ".join(["add"] * 300)  # 300+ tokens; the tiny model has 256 positions
    real_load = generate.load_model
    monkeypatch.setattr(generate, "load_model", lambda *a, **k: pytest.fail("refused only after loading"))
    with refused(capsys, r"prompt 0 \('add add .*\) is 3\d\d tokens: a prompt may have 253 tokens"):
        generate_records(out, tmp_path, "--prompt", long)
    huge = tmp_path / "huge.txt"
    huge.write_text("add " * 2_000_000 + "\nsay hi\n")  # 8 MB: ruled out by its size, never tokenised
    monkeypatch.setattr(generate, "render_prompt", lambda tok, rec, tpl: rec["instruction"])
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    real_call = PreTrainedTokenizerBase.__call__

    def bounded(self, text=None, *args, **kwargs):
        texts = [text] if isinstance(text, str) else text or []
        assert all(len(t) < 100_000 for t in texts), "a huge prompt reached the tokenizer"
        return real_call(self, text, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", bounded)
    with refused(capsys, r"prompt 0 \('add add.*\) is \d{7} bytes \(more than 253 tokens can hold"):
        generate_records(out, tmp_path, "--prompts-file", str(huge))
    monkeypatch.setattr(generate, "load_model", real_load)
    with caplog.at_level("WARNING"):
        answers = generate_records(out, tmp_path, "--prompts-file", str(huge), "GENERATE.TOO_LONG", "truncate")
    assert len(answers) == 2 and "prompt 0 ('add add" in caplog.text and "keeping its last 253 tokens" in caplog.text


# 6. ShareGPT roles
def test_sharegpt_roles_are_mapped_and_an_unknown_one_is_named(tmp_path, tokenizer):  # noqa: F811
    from test_lm_data import cfg_for

    records = [
        {"conversations": [{"from": "user", "value": "say hi"}, {"from": "assistant", "value": "hi !"}]},
        {"conversations": [{"from": "human", "value": "say hi"}, {"from": "chatgpt", "value": "hi !"}]},
        {"conversations": [{"from": "Human", "value": "say hi"}, {"from": "bard", "value": "hi !"}]},
        {
            "conversations": [
                {"from": "system", "value": "hello world ."},
                {"from": "user", "value": "add 2 and 3"},
                {"from": "gpt", "value": "5"},
            ]
        },
        {
            "system": "hello world .",
            "conversations": [{"from": "user", "value": "say"}, {"from": "bing", "value": "hi"}],
        },
    ]
    train, _ = build_datasets(cfg_for(write(tmp_path, records), FORMAT="sharegpt"), tokenizer)
    assert len(train) == 5  # none counted as "no assistant reply"
    texts = [tokenizer.decode(ids) for ids in train["input_ids"]]
    assert texts[3].startswith("hello world . <unk> add 2 and 3 <unk> 5") and "chat between" not in texts[3]
    assert texts[4].startswith("hello world .") and texts[0].startswith("<unk> chat between")  # Vicuna's otherwise
    from test_lm_data import CHAT_TEMPLATE

    chat_tok = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, **tokenizer.special_tokens_map)
    chat_tok.chat_template = CHAT_TEMPLATE  # the system prompt reaches the tokenizer's chat template too
    chat, _ = build_datasets(cfg_for(write(tmp_path, records[3:4]), FORMAT="sharegpt", TEMPLATE="chat"), chat_tok)
    assert chat_tok.decode(chat[0]["input_ids"]) == "<unk> hello world . </s> user: add 2 and 3 </s> assistant: 5 </s>"
    bad = [records[0], {"conversations": [{"from": "human", "value": "a"}, {"from": "tool", "value": "b"}]}]
    with pytest.raises(ValueError, match=r"data.json: record 1: turn 1: unknown role 'from': 'tool'; known roles"):
        build_datasets(cfg_for(write(tmp_path, bad), FORMAT="sharegpt"), tokenizer)
    late = [{"conversations": [{"from": "human", "value": "a"}, {"from": "system", "value": "b"}]}]
    with pytest.raises(ValueError, match=r"record 0: turn 1 is a system turn inside the conversation"):
        build_datasets(cfg_for(write(tmp_path, late), FORMAT="sharegpt"), tokenizer)


# 8. generate checks --output first
@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_generate_checks_output_before_any_work(tmp_path, monkeypatch, where, capsys):
    target = tmp_path / "answers"
    target.mkdir() if where == "folder" else (tmp_path / "file").write_text("x")
    output = target if where == "folder" else tmp_path / "file" / "answers.json"
    monkeypatch.setattr(generate, "read_prompts", lambda args: pytest.fail("work done before --output was checked"))
    with refused(capsys, "is a folder" if where == "folder" else "is a file, not a folder"):
        generate.main(["--adapter", str(tmp_path), "--prompt", "hi", "--output", str(output)])


# 9. a run that failed on its data (nothing trained) does not block the corrected command
def test_a_run_that_failed_on_its_data_does_not_block_the_corrected_command(local_model, tmp_path, capsys):  # noqa: F811
    folder, data = local_model
    out = tmp_path / "run"
    failing = [*opts(folder, data, out, 1), "DATA.MAX_LENGTH", "4", "DATA.TOO_LONG", "drop"]
    with refused(capsys, "no training examples left"):
        main(failing)
    assert (out / "config.yaml").is_file() and not rf.checkpoint_dirs(out)
    assert run(local_model, out, 1)["global_step"] == 1  # another config, but nothing was trained: no --overwrite
    with pytest.raises(FileExistsError, match="holds a run with a different config"):  # a trained run still is
        run(local_model, out, 1, "DATA.MAX_LENGTH", "64")


# 10. TRAIN.* float keys refuse strings at parse time
def test_train_float_keys_refuse_strings(tmp_path):
    with pytest.raises(ValueError, match=r"TRAIN.LEARNING_RATE='abc' must be a number"):
        load_config("", ["TRAIN.LEARNING_RATE", "abc"])
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("TRAIN:\n  WEIGHT_DECAY: lots\n  LEARNING_RATE: 1e-5\n")  # YAML reads 1e-5 as a string
    with pytest.raises(ValueError, match=r"TRAIN.WEIGHT_DECAY='lots' must be a number"):
        load_config(str(yaml_file), [])
    yaml_file.write_text("TRAIN:\n  LEARNING_RATE: 1e-5\n")
    assert load_config(str(yaml_file), []).TRAIN.LEARNING_RATE == 1e-5


# 12. out-of-range values, named at load time (and over a run's config in generate)
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("GENERATE.TEMPERATURE", "-1"),
        ("GENERATE.TOP_P", "0"),
        ("GENERATE.TOP_P", "1.5"),
        ("GENERATE.MAX_NEW_TOKENS", "0"),
        ("GENERATE.TOO_LONG", "'cut'"),
        ("TRAIN.LEARNING_RATE", "-0.1"),
        ("TRAIN.WEIGHT_DECAY", "-1"),
        ("TRAIN.WARMUP_STEPS", "-3"),
        ("TRAIN.ADAM_BETA2", "1"),
        ("MODEL.TOAST.RECON_COEF", "-1"),
        ("MODEL.LORA.DROPOUT", "1.0"),
        ("MODEL.LORA.RANK", "0"),
        ("TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", "0"),
        ("TRAIN.GRADIENT_ACCUMULATION_STEPS", "0"),
        ("TRAIN.SAVE_STEPS", "0"),
        ("TRAIN.LEARNING_RATE", "1e400"),  # infinite
    ],
)
def test_out_of_range_values_are_named(key, value):
    with pytest.raises(ValueError, match=rf"{key}=.* must be"):
        load_config("", [key, value])


def test_generate_names_an_out_of_range_override_before_loading(local_model, tmp_path, monkeypatch, capsys):  # noqa: F811
    out = tmp_path / "run"
    run(local_model, out, 1)
    monkeypatch.setattr(generate, "build_tokenizer", lambda cfg: pytest.fail("refused only after loading"))
    with refused(capsys, r"GENERATE.TEMPERATURE=-1.0 must be >= 0"):
        generate.main(["--adapter", str(out), "--prompt", "hi", "GENERATE.TEMPERATURE", "-1"])


# 15. pre-tuning on an empty or blank corpus names the file and key
@pytest.mark.parametrize("content", ["", "\n   \n\n"])
def test_pretuning_on_an_empty_corpus_names_the_file_and_key(local_model, tmp_path, content, capsys):  # noqa: F811
    from language_generation.pretune import main as pretune

    folder, _ = local_model
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(content)
    command = ["MODEL.NAME_OR_PATH", str(folder), "DATA.PATH", str(corpus), "OUTPUT_DIR", str(tmp_path / "pt")]
    with refused(capsys, rf"DATA.PATH='{corpus}' \({corpus}\) holds no records: it is empty or blank"):
        pretune(command)


def test_changed_top_down_weights_and_hub_names_in_the_inputs_check(local_model, tmp_path):  # noqa: F811
    from language_generation.run_inputs import InputsChanged, check_run_inputs, record_inputs

    folder, data = local_model
    weights = tmp_path / "topdown.bin"
    torch.save({"model.prompt": torch.zeros(1, 32)}, weights)
    cfg = load_config("", [*opts(folder, data, tmp_path / "run", 1), "MODEL.TOPDOWN_WEIGHTS", str(weights)])
    (tmp_path / "run").mkdir()
    recorded = record_inputs(tmp_path / "run", cfg)
    assert set(recorded) == {"base_model", "data", "topdown_weights"}
    check_run_inputs(tmp_path / "run", cfg)  # unchanged: passes
    torch.save({"model.prompt": torch.ones(1, 32)}, weights)
    with pytest.raises(InputsChanged, match=r"MODEL.TOPDOWN_WEIGHTS .*topdown.bin: topdown.bin changed"):
        check_run_inputs(tmp_path / "run", cfg)
    hub = load_config("", [*opts("someone/not-cached", data, tmp_path / "hub", 1)])
    (tmp_path / "hub").mkdir()
    assert record_inputs(tmp_path / "hub", hub)["base_model"] == {"source": "someone/not-cached", "files": {}}
    check_run_inputs(tmp_path / "hub", hub)  # a hub model outside the cache is compared by name only


REPO = Path(__file__).resolve().parents[1]


def _cli(*args, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, **kwargs)


# one live run per run folder (runkit.lock)
def test_a_second_train_into_a_live_runs_folder_is_refused(local_model, tmp_path, monkeypatch):  # noqa: F811
    """While a run trains, a second train into its folder (same config: it would "resume" beside it; another
    config with --overwrite after the KEY VALUE pairs: it would delete the live run's files) is refused, naming
    the folder and the live process, and the live run ends as if alone."""
    from transformers import TrainerCallback

    from language_generation import train as train_module

    folder, data = local_model
    out = tmp_path / "run"
    live = opts(folder, data, out, 3)
    answers = []

    class SecondTrainsMidRun(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1 and not answers:
                other = [*live, "TRAIN.LEARNING_RATE", "0.02", "--overwrite"]
                for command in (live, other):
                    answers.append(_cli("-m", "language_generation.train", *command, timeout=300))

    class Trainer(train_module.ToastTrainer):
        def __init__(self, *args, callbacks=(), **kwargs):
            super().__init__(*args, callbacks=[*callbacks, SecondTrainsMidRun()], **kwargs)

    monkeypatch.setattr(train_module, "ToastTrainer", Trainer)
    results = train(load_config("", live))
    for answer in answers:
        errors = re.findall(r"error: [^\r\n]*", answer.stderr)
        assert answer.returncode == 2 and len(errors) == 1, answer.stderr
        assert f"OUTPUT_DIR {out} is in use by another live run (process {os.getpid()} " in errors[0]
    assert results["global_step"] == 3 and results["resumed_from"] is None
    assert [m["step"] for m in rf.read_metrics(out) if "loss" in m] == [1, 2, 3]  # nothing deleted or doubled
    assert load_config(str(out / "config.yaml"), []).TRAIN.LEARNING_RATE == 0.01
    assert (out / ".lock").read_text() == ""  # released: no holder left behind


def test_a_stale_lock_of_a_killed_run_is_taken_over_with_a_line(local_model, tmp_path, caplog):  # noqa: F811
    out = tmp_path / "run"
    killed = subprocess.Popen(
        [sys.executable, "-c", "import os, sys\nfrom runkit.lock import run_lock\nwith run_lock(sys.argv[1]): os._exit(9)", str(out)],
        cwd=REPO,
    )  # fmt: skip
    assert killed.wait() == 9 and f"process {killed.pid} " in (out / ".lock").read_text()
    with caplog.at_level("WARNING"):
        assert run(local_model, out, 1)["global_step"] == 1
    assert f"taking over the lock of a run whose process is gone (process {killed.pid} " in caplog.text


# one rule for every language CLI: a user's mistake is one error: line and exit status 2
@pytest.mark.parametrize("cli", ["train", "pretune", "generate", "demo"])
def test_every_language_cli_answers_a_mistake_with_one_error_line(cli, tmp_path, capsys, monkeypatch):
    from language_generation import pretune
    from language_generation.demo import __main__ as demo

    monkeypatch.setattr(demo, "cached_model", lambda *a: pytest.fail("the demo converted its model first"))
    base = tmp_path / "base.yaml"
    base.write_text("DATA:\n  MAX_LENGTH: 64\n")
    listed = tmp_path / "listed.yaml"
    listed.write_text(f"_BASE_: [{base.name}]\n")
    empty = tmp_path / "prompts.txt"
    empty.write_text("\n  \n")
    command, argv, match = {
        "train": (main, ["--config-file", str(listed)], r"listed.yaml: _BASE_ must name one YAML file"),
        "pretune": (pretune.main, ["MODEL.TRANSFER_TYPE", "lora"], r"pre-tuning trains the top-down path"),
        "generate": (generate.main, ["--prompts-file", str(empty)], rf"--prompts-file {empty} holds no prompts"),
        "demo": (demo.main, ["--out", str(tmp_path), "TRAIN.MAX_STEPS", "ten"], r"Type mismatch .* TRAIN.MAX_STEPS"),
    }[cli]
    with refused(capsys, match):
        command(argv)


# every record appended or read back survives a kill at any byte
def test_a_run_killed_while_appending_to_its_metrics_resumes(local_model, tmp_path, caplog):  # noqa: F811
    folder, data = local_model
    out = tmp_path / "run"
    run(local_model, out, 4)
    (out / "results.json").unlink()  # as if killed after checkpoint-4 was written, in the middle of a log line
    shutil.rmtree(out / "checkpoint-4")
    whole = (out / rf.METRICS).read_text()
    cut = json.dumps({"step": 4, "epoch": 1.0, "loss": 3.14})[:17]
    (out / rf.METRICS).write_text(whole + cut)
    with caplog.at_level("WARNING"):
        resumed = run(local_model, out, 4)
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["global_step"] == 4
    assert "last line is incomplete" in caplog.text
    assert [m["step"] for m in rf.read_metrics(out) if "loss" in m] == [1, 2, 3, 4]


@pytest.mark.parametrize("cut", [1, 9, 25])
def test_an_append_after_a_cut_line_never_joins_it(tmp_path, cut, caplog):
    from runkit.files import append_jsonl, read_jsonl

    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"step": 1})
    path.write_text(path.read_text() + json.dumps({"step": 2, "loss": 0.123456789})[:cut])  # a kill mid-append
    with caplog.at_level("WARNING"):
        append_jsonl(path, {"step": 3})
    assert read_jsonl(path) == [{"step": 1}, {"step": 3}] and "was cut short" in caplog.text


# a read-only HF_HOME (the datasets cache) names DATA.CACHE_DIR
def test_an_unwritable_datasets_cache_says_to_set_data_cache_dir(local_model, tmp_path, monkeypatch, capsys):  # noqa: F811
    import datasets.config

    folder, data = local_model
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", Path("/sys/fs/toast-hf-home/datasets"))  # not writable
    with refused(capsys, r"the datasets cache /sys/fs/toast-hf-home/datasets .*set DATA.CACHE_DIR to a folder"):
        main(opts(folder, data, tmp_path / "run", 1))
    cache = tmp_path / "cache"
    assert run(local_model, tmp_path / "run", 1, "DATA.CACHE_DIR", str(cache))["global_step"] == 1
    assert any(cache.iterdir())


# no code from a folder someone sent: settings that run code come from the command line of the call
def test_a_run_folder_never_turns_on_code_execution(local_model, tmp_path, capsys):  # noqa: F811
    from test_lm_generate import generate_records

    out = tmp_path / "run"
    run(local_model, out, 1, "MODEL.TRANSFER_TYPE", "end2end")
    marker = tmp_path / "code-ran"
    (out / "sent.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class SentConfig(LlamaConfig):\n    pass\n"
        "class SentModel(LlamaForCausalLM):\n    config_class = SentConfig\n"
    )
    config = json.loads((out / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "sent.SentConfig", "AutoModelForCausalLM": "sent.SentModel"}
    (out / "config.json").write_text(json.dumps(config))
    with refused(capsys, rf"{out / 'config.json'} maps loading onto code .*pass MODEL.TRUST_REMOTE_CODE True on"):
        generate_records(out, tmp_path, "--prompt", "say hi")
    saved = out / "config.yaml"
    trusting = saved.read_text().replace("TRUST_REMOTE_CODE: false", "TRUST_REMOTE_CODE: true")
    saved.write_text(trusting)
    with refused(capsys, rf"{saved} sets MODEL.TRUST_REMOTE_CODE True, .*pass MODEL.TRUST_REMOTE_CODE True on the"):
        generate_records(out, tmp_path, "--prompt", "say hi")
    hub_kernel = trusting.replace("ATTN_IMPLEMENTATION: ''", "ATTN_IMPLEMENTATION: someone/kernel")
    saved.write_text(hub_kernel.replace("TRUST_REMOTE_CODE: true", "TRUST_REMOTE_CODE: false"))
    with refused(capsys, r"sets MODEL.ATTN_IMPLEMENTATION 'someone/kernel', which downloads and runs"):
        generate_records(out, tmp_path, "--prompt", "say hi")
    assert not marker.exists()
    saved.write_text(trusting)
    generate_records(out, tmp_path, "--prompt", "say hi", "MODEL.TRUST_REMOTE_CODE", "True")  # the call allows it
    assert marker.read_text() == "ran"


# no silent wrong results: a mistyped CONFIG= is refused, never dropped for the defaults
@pytest.mark.parametrize(
    "config", ["llama7b_tost", "configs/alpaca/llama7b_lora", "llama7b_lora", "llama7b_lora.yaml"]
)
def test_train_alpaca_sh_refuses_an_unknown_config_and_finds_a_known_one(tmp_path, config):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text('#!/bin/sh\necho "python $*"\n')  # records what the script would run
    (fake / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "CONFIG": config, "MODEL": "m", "DATA": "d"}
    done = subprocess.run(["bash", "scripts/train_alpaca.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    if config == "llama7b_tost":
        assert done.returncode == 2 and not done.stdout
        assert "error: CONFIG=llama7b_tost is neither a file nor a config in configs/alpaca" in done.stderr
        listed = done.stderr.split("choose one of: ")[1].rstrip(")\n").split(", ")
        assert sorted(listed) == sorted(p.stem for p in (REPO / "configs" / "alpaca").glob("*.yaml"))
    else:
        assert done.returncode == 0 and "--config-file configs/alpaca/llama7b_lora.yaml" in done.stdout, done.stderr


# no silent wrong results: a top-down path made on another base of the same shape is refused by name
def test_top_down_weights_made_on_another_base_are_refused(local_model, tokenizer, tmp_path, capsys):  # noqa: F811
    from lm_helpers import save_tiny_llama

    from language_generation.model import build_model

    folder, data = local_model
    source = tmp_path / "source"
    run(local_model, source, 1)
    assert json.loads((source / "adapter_config.json").read_text())["base_model_files"]["model.safetensors"]
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)  # the same base elsewhere: the same model
    reuse = ["MODEL.TOPDOWN_WEIGHTS", str(source)]
    build_model(load_config("", [*opts(copy, data, tmp_path / "ok", 1), *reuse]))
    other = save_tiny_llama(tmp_path / "other", tokenizer, seed=7)  # same shape, other weights
    with refused(
        capsys, rf"MODEL.TOPDOWN_WEIGHTS='{source}' was made on the base model .*by content \(model.safetensors"
    ):
        main([*opts(other, data, tmp_path / "tune", 1), *reuse])


# an unwritable OUTPUT_DIR, or a disk that fills during a checkpoint write: one error line naming it
def test_an_unwritable_output_dir_and_a_full_disk_are_one_line(local_model, tmp_path, monkeypatch, capsys):  # noqa: F811
    folder, data = local_model
    with refused(capsys, r"/sys/fs/toast-run: .*\(choose a folder you may write"):
        main(opts(folder, data, "/sys/fs/toast-run", 1))  # not writable, even for root
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt"):
            Path(f).write_bytes(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4864 vs 4752")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "run"
    with refused(capsys, rf"writing {out / 'checkpoint-2'} failed: most likely the disk \(or quota\) is full"):
        main(opts(folder, data, out, 2))


@pytest.mark.parametrize("damage", ["cut adapter", "cut config", "not a checkpoint"])
def test_damaged_top_down_weights_are_one_line_naming_the_file(local_model, tmp_path, capsys, damage):  # noqa: F811
    folder, data = local_model
    source = tmp_path / "source"
    run(local_model, source, 1)
    name = {"cut adapter": "adapter.safetensors", "cut config": "adapter_config.json"}.get(damage)
    if name:
        damaged = source / name
        damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    else:
        damaged = tmp_path / "topdown.bin"
        damaged.write_bytes(b"these are not tensors")
    given = source if name else damaged
    with refused(capsys, rf"MODEL.TOPDOWN_WEIGHTS='{given}': ({damaged} is damaged|torch cannot load it as tensors)"):
        main([*opts(folder, data, tmp_path / "tune", 1), "MODEL.TOPDOWN_WEIGHTS", str(given)])


def test_a_model_that_cannot_be_found_is_one_line(local_model, tmp_path, capsys):  # noqa: F811
    _, data = local_model
    missing = tmp_path / "no-such-model"  # a mistyped folder: not a hub name either, so no network is asked
    with refused(capsys, rf"cannot load a model from '{missing}' \(MODEL.NAME_OR_PATH, or the run folder\)"):
        main(opts(missing, data, tmp_path / "run", 1))


def test_a_damaged_results_file_is_named_and_deleting_it_resumes(local_model, tmp_path, capsys):  # noqa: F811
    folder, data = local_model
    out = tmp_path / "run"
    run(local_model, out, 2)
    results = out / "results.json"
    results.write_text(results.read_text()[:40])
    with refused(capsys, rf"{results} is damaged .*delete it and run the command again"):
        main(opts(folder, data, out, 2))
    results.unlink()
    again = run(local_model, out, 2)  # resumed from its final checkpoint: nothing is left to train
    assert again["resumed_from"].endswith("checkpoint-2") and again["global_step"] == 2
    assert [m["step"] for m in rf.read_metrics(out) if "loss" in m] == [1, 2]


@pytest.mark.parametrize("name", ["tokenizer_config.json", "tokenizer.json", "adapter.safetensors"])
def test_generate_names_a_run_file_a_kill_cut_short(local_model, tmp_path, capsys, name):  # noqa: F811
    from test_lm_generate import generate_records

    out = tmp_path / "run"
    run(local_model, out, 1)
    cut = out / name
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    with refused(capsys, rf"{cut} is damaged .*train again into the folder"):
        generate_records(out, tmp_path, "--prompt", "say hi")
