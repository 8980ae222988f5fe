"""generate reads what train wrote: run folders of every transfer type, Alpaca inputs, batches, templates."""

from __future__ import annotations

import json

import pytest
from lm_helpers import refused
from test_lm_data import tokenizer  # noqa: F401  (fixture)
from test_lm_train import local_model, opts  # noqa: F401  (fixture)

from language_generation import generate, trained_run
from language_generation.config import load_config
from language_generation.methods import TRANSFER_METHODS, TransferMethod
from language_generation.train import train


def run_of(local_model, tmp_path, transfer, *extra):  # noqa: F811
    folder, data = local_model
    out = tmp_path / f"run-{transfer}"
    train(load_config("", [*opts(folder, data, out, 1), "MODEL.TRANSFER_TYPE", transfer, *extra]))
    return out


def generate_records(run, tmp_path, *args):
    output = tmp_path / "answers.json"
    generate.main(
        [
            "--adapter",
            str(run),
            "--output",
            str(output),
            *args,
            "GENERATE.MAX_NEW_TOKENS",
            "3",
            "GENERATE.TEMPERATURE",
            "0",
        ]
    )
    return json.loads(output.read_text())


@pytest.mark.parametrize("transfer", sorted(TRANSFER_METHODS))
def test_every_method_trains_and_generates_from_its_run_folder(local_model, tmp_path, transfer):  # noqa: F811
    """train → generate from the run folder alone (the base model, method and template come from its config),
    for every registered method; the run folder holds the method's files."""
    run = run_of(local_model, tmp_path, transfer)
    method = TRANSFER_METHODS[transfer]
    assert any((run / name).is_file() for name in method.run_weights)
    records = generate_records(run, tmp_path, "--prompt", "add 2 and 3", "--input", "hello")
    assert records[0]["instruction"] == "add 2 and 3" and records[0]["input"] == "hello"
    assert isinstance(records[0]["output"], str)


def test_input_reaches_the_prompt_and_batches_match_single_prompts(local_model, tmp_path, monkeypatch):  # noqa: F811
    run = run_of(local_model, tmp_path, "toast")
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"instruction": "add 2 and 3", "input": "hello world"}, {"instruction": "say hi"}, {"instruction": "add"}]
    prompts.write_text("\n".join(json.dumps(r) for r in rows))
    rendered = []
    real = generate.render_prompt
    monkeypatch.setattr(
        generate, "render_prompt", lambda tok, rec, tpl: rendered.append(real(tok, rec, tpl)) or rendered[-1]
    )
    single = generate_records(run, tmp_path, "--prompts-file", str(prompts))
    assert "### Input:\nhello world" in rendered[0] and "### Input:" not in rendered[1]
    assert [r["input"] for r in single] == ["hello world", "", ""]
    batched = generate_records(run, tmp_path, "--prompts-file", str(prompts), "GENERATE.BATCH_SIZE", "3")
    assert batched == single  # left padding changes nothing in greedy answers


def test_the_runs_template_is_used_by_default(local_model, tmp_path, monkeypatch):  # noqa: F811
    run = run_of(local_model, tmp_path, "lora", "DATA.TEMPLATE", "vicuna")
    templates = []
    real = generate.render_prompt
    monkeypatch.setattr(generate, "render_prompt", lambda tok, rec, tpl: templates.append(tpl) or real(tok, rec, tpl))
    generate_records(run, tmp_path, "--prompt", "say hi")
    generate_records(run, tmp_path, "--prompt", "say hi", "DATA.TEMPLATE", "alpaca")  # overridden
    assert templates == ["vicuna", "alpaca"]


def test_a_folder_that_is_not_a_run_fails_before_loading(tmp_path, monkeypatch, capsys):
    def must_not_load(*args, **kwargs):
        raise AssertionError("loaded a model or tokenizer")

    monkeypatch.setattr(generate, "build_tokenizer", must_not_load)
    monkeypatch.setattr(trained_run, "build_tokenizer", must_not_load)
    monkeypatch.setattr(trained_run, "build_model", must_not_load)
    monkeypatch.setattr(TransferMethod, "load_run", must_not_load)
    with refused(capsys, "is not a run folder: it has no config.yaml"):
        generate.main(["--adapter", str(tmp_path), "--prompt", "hi"])
    with refused(capsys, "does not exist"):
        generate.main(["--adapter", str(tmp_path / "missing"), "--prompt", "hi"])
    (tmp_path / "config.yaml").write_text("MODEL:\n  TRANSFER_TYPE: lora\n  NAME_OR_PATH: somewhere\n")
    with refused(capsys, r"a lora run, but none of \['adapter_model.safetensors'"):
        generate.main(["--adapter", str(tmp_path), "--prompt", "hi"])
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with refused(capsys, "adapter_model.safetensors is damaged"):
        generate.main(["--adapter", str(tmp_path), "--prompt", "hi"])
    with refused(capsys, "MODEL.NAME_OR_PATH is empty"):
        generate.main(["--prompt", "hi"])


def test_prompts_are_rendered_in_the_runs_template(tokenizer):  # noqa: F811
    from test_lm_data import CHAT_TEMPLATE

    from language_generation.templates import render_prompt

    record = {"instruction": "add 2 and 3", "input": "hello"}
    chat_tok = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, **tokenizer.special_tokens_map)
    chat_tok.chat_template = CHAT_TEMPLATE
    assert render_prompt(chat_tok, record, "chat") == "user: add 2 and 3\n\nhello </s> assistant: "
    assert render_prompt(chat_tok, record, "vicuna").endswith("USER: add 2 and 3\n\nhello ASSISTANT:")
    assert render_prompt(chat_tok, record, "alpaca").endswith("### Input:\nhello\n\n### Response:")
