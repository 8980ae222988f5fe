"""Instruction data for causal-LM tuning, through ``datasets``.

- ``alpaca``: records ``{instruction, input, output}`` (JSON list or JSONL) with the Stanford Alpaca prompt
  templates; labels are the response tokens plus EOS, prompt tokens are ``-100``.
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt", "value": ...}, ...]}`` with the Vicuna v1.1
  template (the original ``train.py``); only the assistant turns (and their EOS) are supervised.
- ``text``: raw documents (``{"text": ...}`` records, or a ``.txt`` file with one document per blank-line
  separated block), tokenised, concatenated with EOS and cut into ``DATA.BLOCK_SIZE`` blocks (pre-tuning).

Errors name the file and the record number.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from datasets import Dataset
from yacs.config import CfgNode

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
ALPACA_PROMPTS = {
    "prompt_input": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
    ),
    "prompt_no_input": (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\n{instruction}\n\n### Response:"
    ),
}
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
FORMATS = ("alpaca", "sharegpt", "text")
TOO_LONG = ("truncate", "drop", "raise")


def alpaca_prompt(record: dict) -> str:
    """The Stanford Alpaca prompt for a record (with or without input)."""
    if record.get("input"):
        return ALPACA_PROMPTS["prompt_input"].format(instruction=record["instruction"], input=record["input"])
    return ALPACA_PROMPTS["prompt_no_input"].format(instruction=record["instruction"])


def read_records(path: str | Path) -> list[dict]:
    """A JSON list or JSONL file of objects; a malformed file names the line or record."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DATA.PATH={str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        return [{"text": block.strip()} for block in text.split("\n\n") if block.strip()]
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON at line {err.lineno} ({err.msg})") from err
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"{path}: record {number} is a {type(record).__name__}, expected an object")
    return records


def check_fields(records: list[dict], fmt: str, source: str) -> None:
    required = {"alpaca": ("instruction", "output"), "sharegpt": ("conversations",), "text": ("text",)}[fmt]
    for number, record in enumerate(records):
        missing = [f for f in required if f not in record]
        if missing:
            raise ValueError(f"{source}: record {number} lacks {missing} (DATA.FORMAT {fmt} needs {list(required)})")
        for field in required:
            if fmt != "sharegpt" and not isinstance(record[field], str):
                raise ValueError(f"{source}: record {number} field {field!r} is not a string")


def leading_special_ids(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts in front of any text (LLaMA's BOS; none for Qwen2 or SmolLM2)."""
    return list(tokenizer("", add_special_tokens=True)["input_ids"])


def tokenize_supervised(tokenizer, segments: list[tuple[str, bool]], prefix: list[int] | None = None) -> dict:
    """Token ids of the segments in order, labels only on the segments marked True; the special tokens the
    tokenizer puts in front of a text (LLaMA's BOS; none for Qwen2 or SmolLM2) first, EOS after every
    supervised segment."""
    ids: list[int] = list(leading_special_ids(tokenizer) if prefix is None else prefix)
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    for text, supervised in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        if supervised:
            piece = piece + [tokenizer.eos_token_id]
        ids += piece
        labels += piece if supervised else [IGNORE_INDEX] * len(piece)
    return {"input_ids": ids, "labels": labels}


def alpaca_example(record: dict, tokenizer, prefix: list[int] | None = None) -> dict:
    return tokenize_supervised(tokenizer, [(alpaca_prompt(record), False), (record["output"], True)], prefix)


def sharegpt_example(record: dict, tokenizer, prefix: list[int] | None = None) -> dict:
    """Vicuna v1.1: ``SYSTEM USER: q ASSISTANT: a</s>USER: ...``; a conversation must start with the human."""
    turns = [t for t in record["conversations"] if t.get("from") in ("human", "gpt")]
    if turns and turns[0]["from"] != "human":
        turns = turns[1:]
    segments: list[tuple[str, bool]] = []
    context = VICUNA_SYSTEM + " "
    for i, turn in enumerate(turns):
        expected = "human" if i % 2 == 0 else "gpt"
        if turn["from"] != expected:
            break
        if expected == "human":
            context += f"USER: {turn['value']} ASSISTANT:"
        else:
            segments += [(context, False), (" " + turn["value"], True)]
            context = ""
    return tokenize_supervised(tokenizer, segments, prefix) if segments else {"input_ids": [], "labels": []}


def apply_length_policy(examples: list[dict], max_length: int, policy: str) -> list[dict]:
    if policy not in TOO_LONG:
        raise ValueError(f"DATA.TOO_LONG must be one of {TOO_LONG}, got {policy!r}")
    long = [i for i, e in enumerate(examples) if len(e["input_ids"]) > max_length]
    if long:
        logger.info(
            "%d of %d examples are longer than DATA.MAX_LENGTH=%d: %s",
            len(long),
            len(examples),
            max_length,
            {"truncate": "truncated", "drop": "dropped", "raise": "stopping"}[policy],
        )
    if long and policy == "raise":
        raise ValueError(
            f"example {long[0]} has {len(examples[long[0]]['input_ids'])} tokens, "
            f"DATA.MAX_LENGTH is {max_length} (DATA.TOO_LONG raise)"
        )
    if policy == "drop":
        return [e for e in examples if len(e["input_ids"]) <= max_length]
    return [{k: v[:max_length] for k, v in e.items()} for e in examples]


def text_blocks(records: list[dict], tokenizer, block_size: int) -> list[dict]:
    """Documents joined with EOS and cut into full blocks (the remainder is dropped); labels = inputs."""
    stream: list[int] = []
    for record in records:
        stream += tokenizer(record["text"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    usable = len(stream) // block_size * block_size
    return [
        {"input_ids": stream[i : i + block_size], "labels": stream[i : i + block_size]}
        for i in range(0, usable, block_size)
    ]


def describe_example(example: dict, tokenizer) -> str:
    """One example with the masked part in [brackets], so users can see what the loss is taken on."""
    out, masked = [], None
    for token, label in zip(example["input_ids"], example["labels"]):
        is_masked = label == IGNORE_INDEX
        if is_masked != masked:
            out.append("[" if is_masked else "]" if masked else "")
            masked = is_masked
        out.append(tokenizer.decode([token]))
    if masked:
        out.append("]")
    return "".join(out)


def load_records(cfg: CfgNode) -> tuple[list[dict], str]:
    """Records from a file, a folder of ``.json``/``.jsonl`` files, or a hub dataset name (train split);
    at most ``DATA.MAX_RECORDS`` of them when that is set."""
    path = Path(cfg.DATA.PATH)
    limit = cfg.DATA.MAX_RECORDS or None
    if not cfg.DATA.PATH:
        raise ValueError("DATA.PATH is empty: give an Alpaca/ShareGPT JSON(L) file, a folder or a hub dataset name")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl", ".txt"))
        if not files:
            raise FileNotFoundError(f"DATA.PATH={str(path)!r} holds no .json, .jsonl or .txt files")
        return [r for f in files for r in read_records(f)][:limit], str(path)
    if path.suffix in (".json", ".jsonl", ".txt") or path.exists():
        return read_records(path)[:limit], str(path)
    from datasets import load_dataset

    split = f"train[:{limit}]" if limit else "train"
    return list(load_dataset(cfg.DATA.PATH, split=split)), cfg.DATA.PATH


def build_datasets(cfg: CfgNode, tokenizer) -> tuple[Dataset, Dataset | None]:
    """Tokenised train and held-out datasets (``DATA.EVAL_FRACTION``, seeded)."""
    fmt = cfg.DATA.FORMAT
    if fmt not in FORMATS:
        raise ValueError(f"DATA.FORMAT must be one of {FORMATS}, got {fmt!r}")
    records, source = load_records(cfg)
    check_fields(records, fmt, source)
    if fmt == "text":
        examples = text_blocks(records, tokenizer, cfg.DATA.BLOCK_SIZE)
    else:
        make = alpaca_example if fmt == "alpaca" else sharegpt_example
        prefix = leading_special_ids(tokenizer)  # once, not per example
        examples = [make(r, tokenizer, prefix) for r in records]
        examples = [e for e in examples if any(label != IGNORE_INDEX for label in e["labels"])]
        examples = apply_length_policy(examples, cfg.DATA.MAX_LENGTH, cfg.DATA.TOO_LONG)
    if not examples:
        raise ValueError(f"{source}: no training examples left after tokenising and filtering")
    logger.info("example 0 ([masked] tokens take no loss):\n%s", describe_example(examples[0], tokenizer))
    order = list(range(len(examples)))
    random.Random(cfg.SEED).shuffle(order)
    n_eval = int(round(len(examples) * cfg.DATA.EVAL_FRACTION))
    eval_ids, train_ids = set(order[:n_eval]), order[n_eval:]
    train = Dataset.from_list([examples[i] for i in sorted(train_ids)])
    held_out = Dataset.from_list([examples[i] for i in sorted(eval_ids)]) if n_eval else None
    logger.info("%s: %d training examples, %d held out", source, len(train), n_eval)
    return train, held_out
