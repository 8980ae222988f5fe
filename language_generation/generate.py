"""Talk to a tuned model:

    python -m language_generation.generate --adapter RUN_DIR --prompt TEXT [--input TEXT] [KEY VALUE ...]
    python -m language_generation.generate --adapter RUN_DIR --prompts-file FILE --output answers.json

``--adapter`` takes any run folder ``train`` (or ``pretune``) wrote, for every registered transfer type
(:mod:`.methods`), loaded as :mod:`.trained_run` loads it: the base model, transfer type, template
(``DATA.TEMPLATE``) and dtype come from the run's ``config.yaml``; ``--config-file`` and ``KEY VALUE`` pairs
override them. Without ``--adapter`` the
model is built from the config alone (``MODEL.NAME_OR_PATH``).

Prompts: ``--prompt`` (with ``--input`` for an Alpaca input), or ``--prompts-file``: a JSON list or JSONL of
``{instruction, input}`` records (plain strings are instructions), or a .txt file with one instruction a
line. Sampling follows ``GENERATE.*`` (temperature 0 = greedy); ``GENERATE.BATCH_SIZE`` prompts are
generated at once (left padding, a progress bar); with batch size 1 tokens stream to the terminal.
``--output`` writes a JSON list of ``{instruction, input, output}`` records.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoConfig, TextStreamer
from yacs.config import CfgNode

from runkit.cli import UserError, user_errors
from runkit.files import atomic_write_text, check_output_file

from .config import check_model_name, load_config
from .model import build_tokenizer, model_found
from .prompts import fit_prompts, model_positions
from .records import checked_record, read_raw
from .templates import render_prompt, resolve_template
from .trained_run import base_matched, load_model, model_source, run_config, tokenizer_source

# ---------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------


def read_prompts(args) -> list[dict]:
    """``{instruction, input}`` records from ``--prompt``/``--input`` or ``--prompts-file``."""
    if args.prompt:
        return [{"instruction": args.prompt, "input": args.input}]
    if args.input:
        raise ValueError("--input goes with --prompt (a prompts file gives each record its own input)")
    if not args.prompts_file:
        raise ValueError("give --prompt TEXT or --prompts-file FILE")
    path = Path(args.prompts_file)
    if not path.is_file():
        raise FileNotFoundError(f"--prompts-file {path} does not exist")
    if path.suffix in (".json", ".jsonl"):
        records = []
        for where, record in read_raw(path):
            if isinstance(record, str):
                record = {"instruction": record}
            if not isinstance(record, dict) or "instruction" not in record:
                raise ValueError(
                    f"{where}: expected an object with an 'instruction' (and optional 'input') or a string"
                )
            records.append(checked_record({**record, "output": ""}, "alpaca", where))
        if not records:
            raise UserError(f"--prompts-file {path} holds no prompts (no records); give a JSON list of instructions")
        return [{"instruction": r["instruction"], "input": r["input"]} for r in records]
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise ValueError(f"--prompts-file {path}: not UTF-8 text ({err.reason})") from err
    if not lines:
        raise UserError(f"--prompts-file {path} holds no prompts (it is empty or blank); give one instruction a line")
    return [{"instruction": line, "input": ""} for line in lines]


def sampling_kwargs(cfg: CfgNode) -> dict:
    gen = cfg.GENERATE
    kwargs = dict(do_sample=gen.TEMPERATURE > 0, max_new_tokens=gen.MAX_NEW_TOKENS)
    if gen.TEMPERATURE > 0:
        kwargs.update(temperature=gen.TEMPERATURE, top_k=gen.TOP_K, top_p=gen.TOP_P)
    return kwargs


def end_token_ids(model, tokenizer) -> list[int]:
    """Every end token of the model's generation config (Llama-3-style chat models end a turn with one
    and the text with another), then the tokenizer's EOS if it is not among them."""
    config = getattr(model, "generation_config", None) or getattr(
        getattr(model, "base", None), "generation_config", None
    )
    configured = getattr(config, "eos_token_id", None)
    ids = list(configured) if isinstance(configured, (list, tuple)) else [configured]
    ids.append(tokenizer.eos_token_id)
    return list(dict.fromkeys(i for i in ids if i is not None))


def fitted_prompts(cfg: CfgNode, tokenizer, prompts: list[dict], source: str) -> tuple[list[str], int | None]:
    """The rendered prompts, checked against the positions of the model at ``source`` (its config only: before
    the weights load): see :func:`.prompts.fit_prompts`."""
    template = resolve_template(cfg)
    texts = [render_prompt(tokenizer, record, template.name) for record in prompts]
    with model_found(source):
        config = AutoConfig.from_pretrained(source, trust_remote_code=cfg.MODEL.TRUST_REMOTE_CODE)
    return fit_prompts(
        texts,
        tokenizer,
        model_positions(config),
        cfg.GENERATE.MAX_NEW_TOKENS,
        cfg.GENERATE.TOO_LONG,
        add_special_tokens=not template.own_special_tokens,
        labels=[record["instruction"] for record in prompts],
    )


@torch.no_grad()
def generate_all(
    model, tokenizer, cfg: CfgNode, prompts: list[dict], texts: list[str] | None = None, max_prompt_tokens=None
) -> list[dict]:
    """Answers for every prompt, ``GENERATE.BATCH_SIZE`` at a time (left padding); streamed when it is 1.
    ``texts``: the prompts already rendered (and fitted); ``max_prompt_tokens``: keep each prompt's last tokens."""
    template = resolve_template(cfg)
    batch_size = cfg.GENERATE.BATCH_SIZE
    if batch_size < 1:
        raise ValueError(f"GENERATE.BATCH_SIZE={batch_size} must be at least 1")
    tokenizer.padding_side = "left"
    if texts is None:
        texts = [render_prompt(tokenizer, record, template.name) for record in prompts]
    limits = {}
    if max_prompt_tokens is not None:
        tokenizer.truncation_side = "left"
        limits = {"truncation": True, "max_length": max_prompt_tokens}
    stream = batch_size == 1
    records = []
    starts = range(0, len(texts), batch_size)
    for start in starts if stream else tqdm(starts, desc=f"generating ({batch_size} prompts a batch)"):
        chunk = texts[start : start + batch_size]
        enc = tokenizer(
            chunk, return_tensors="pt", padding=True, add_special_tokens=not template.own_special_tokens, **limits
        )
        enc = {k: v.to(model.device) for k, v in enc.items()}
        if stream:
            print(f"\n### {prompts[start]['instruction']}\n", flush=True)
        out = model.generate(
            **enc,
            streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True) if stream else None,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=end_token_ids(model, tokenizer),
            **sampling_kwargs(cfg),
        )
        width = enc["input_ids"].shape[1]
        for i, row in enumerate(out):
            record = prompts[start + i]
            text = tokenizer.decode(row[width:], skip_special_tokens=True).strip()
            records.append({"instruction": record["instruction"], "input": record["input"], "output": text})
            if not stream:
                tqdm.write(f"\n### {record['instruction']}\n{text}")
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", help="YAML merged over the run's config (or the defaults)")
    parser.add_argument("--adapter", default="", help="a run folder of train/pretune (any transfer type)")
    parser.add_argument("--prompt", default="", help="one instruction")
    parser.add_argument("--input", default="", help="the Alpaca input that goes with --prompt")
    parser.add_argument("--prompts-file", default="", help="JSON list / JSONL of {instruction, input}, or .txt")
    parser.add_argument("--output", default="", help="write [{instruction, input, output}, ...] here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. GENERATE.TEMPERATURE 0")
    args = parser.parse_args(argv)
    with user_errors():
        generate_from(args)


def generate_from(args: argparse.Namespace) -> None:
    """Everything that can be checked is checked before the weights load; then the answers are generated."""
    run_dir = Path(args.adapter) if args.adapter else None
    if args.output:
        check_output_file(args.output, "answers.json")
    prompts = read_prompts(args)
    if run_dir is not None:
        cfg = run_config(run_dir, args.config_file, args.opts)
    else:
        cfg = load_config(args.config_file, args.opts)
    check_model_name(cfg)
    resolve_template(cfg)
    matched = base_matched(cfg, run_dir)
    tokenizer = build_tokenizer(tokenizer_source(cfg, run_dir))
    texts, max_prompt_tokens = fitted_prompts(cfg, tokenizer, prompts, model_source(cfg, run_dir))
    model = load_model(cfg, run_dir, matched).eval()
    if torch.cuda.is_available():
        model.to("cuda")
    records = generate_all(model, tokenizer, cfg, prompts, texts, max_prompt_tokens)
    if args.output:
        atomic_write_text(args.output, json.dumps(records, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
