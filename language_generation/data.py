"""Instruction data and raw text for causal-LM tuning, through ``datasets`` (Arrow on disk).

Record layouts (``DATA.FORMAT``):

- ``alpaca``: records ``{instruction, input, output}`` (JSON list or JSONL);
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt", "value": ...}, ...]}``;
- ``text``: raw documents (``{"text": ...}`` records, or a ``.txt`` file with one document per blank-line
  separated block), for pre-tuning.

Prompt templates (``DATA.TEMPLATE``): ``alpaca`` (Stanford Alpaca), ``vicuna`` (Vicuna v1.1, the original
``train.py``) or ``chat`` (the tokenizer's own chat template); "" picks alpaca for Alpaca records and vicuna
for ShareGPT. Only the responses (and the EOS that ends them; for ``chat`` the template's end-of-turn
text) take loss; prompt tokens are ``-100``.

Records are streamed from the files into an Arrow dataset on disk, tokenised with batched ``map``
(``DATA.NUM_PROC`` processes), and raw text is grouped into ``DATA.BLOCK_SIZE`` blocks as ``transformers``'
``run_clm`` example does, so memory stays flat however large the corpus is. Errors name the file and record.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset, Features, Value
from datasets.exceptions import DatasetGenerationError
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
TEMPLATES = ("alpaca", "vicuna", "chat")
TOO_LONG = ("truncate", "drop", "raise")
DATA_SUFFIXES = (".json", ".jsonl", ".txt")
FEATURES = {
    "alpaca": Features({"instruction": Value("string"), "input": Value("string"), "output": Value("string")}),
    "sharegpt": Features({"conversations": [{"from": Value("string"), "value": Value("string")}]}),
    "text": Features({"text": Value("string")}),
}
DROP_REASONS = {
    "too_long": "longer than DATA.MAX_LENGTH (DATA.TOO_LONG drop)",
    "no_target": "nothing to learn (a conversation without an assistant reply after a user turn)",
    "target_truncated": "every response token cut off by truncation to DATA.MAX_LENGTH",
}


# ---------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------


def alpaca_prompt(record: dict) -> str:
    """The Stanford Alpaca prompt for a record (with or without input)."""
    if record.get("input"):
        return ALPACA_PROMPTS["prompt_input"].format(instruction=record["instruction"], input=record["input"])
    return ALPACA_PROMPTS["prompt_no_input"].format(instruction=record["instruction"])


def user_message(record: dict) -> str:
    """An Alpaca record as one user turn (Vicuna and chat templates): the instruction, then its input."""
    return record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")


def resolve_template(cfg: CfgNode) -> str:
    """``DATA.TEMPLATE``, or the format's own (alpaca for Alpaca records, vicuna for ShareGPT)."""
    template = cfg.DATA.TEMPLATE or ("vicuna" if cfg.DATA.FORMAT == "sharegpt" else "alpaca")
    if template not in TEMPLATES:
        raise ValueError(f"DATA.TEMPLATE must be one of {TEMPLATES} or empty, got {template!r}")
    if template == "alpaca" and cfg.DATA.FORMAT == "sharegpt":
        raise ValueError("DATA.TEMPLATE alpaca is single-turn; ShareGPT conversations take vicuna or chat")
    return template


def render_prompt(tokenizer, record: dict, template: str) -> str:
    """The text a model sees before its answer (``generate``), in the template it was tuned with."""
    if template == "alpaca":
        return alpaca_prompt(record)
    if template == "vicuna":
        return f"{VICUNA_SYSTEM} USER: {user_message(record)} ASSISTANT:"
    check_chat_template(tokenizer)
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_message(record)}], tokenize=False, add_generation_prompt=True
    )


def check_chat_template(tokenizer) -> None:
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"DATA.TEMPLATE chat, but the tokenizer of {tokenizer.name_or_path!r} has no chat template "
            "(use alpaca or vicuna)"
        )


def conversation(record: dict, fmt: str) -> list[tuple[str, str]]:
    """``[(role, text), ...]`` alternating user / assistant, starting with the user (ShareGPT: a leading
    assistant turn is skipped and the conversation ends at the first out-of-turn message, as Vicuna did)."""
    if fmt == "alpaca":
        return [("user", user_message(record)), ("assistant", record["output"])]
    turns = [t for t in record["conversations"] if t["from"] in ("human", "gpt")]
    if turns and turns[0]["from"] != "human":
        turns = turns[1:]
    out = []
    for i, turn in enumerate(turns):
        if turn["from"] != ("human" if i % 2 == 0 else "gpt"):
            break
        out.append(("user" if turn["from"] == "human" else "assistant", turn["value"]))
    return out


def segments(record: dict, fmt: str, template: str, tokenizer) -> list[tuple[str, bool]]:
    """The example's text as ``[(text, supervised), ...]`` in the template."""
    if template == "alpaca":
        return [(alpaca_prompt(record), False), (record["output"], True)]
    turns = conversation(record, fmt)
    if template == "vicuna":
        out, context = [], VICUNA_SYSTEM + " "
        for role, text in turns:
            if role == "user":
                context += f"USER: {text} ASSISTANT:"
            else:
                out += [(context, False), (" " + text, True)]
                context = ""
        return out
    return chat_segments(tokenizer, turns)


def chat_segments(tokenizer, turns: list[tuple[str, str]]) -> list[tuple[str, bool]]:
    """The tokenizer's chat template, split so that each assistant reply (up to its end-of-turn text) is
    supervised and everything the template puts before it is not."""
    messages = [{"role": role, "content": text} for role, text in turns]
    out, done = [], ""
    for i, (role, _) in enumerate(turns):
        if role != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise ValueError(
                f"the chat template of {tokenizer.name_or_path!r} does not render a conversation as prompt + "
                "reply, so the reply cannot be masked; use DATA.TEMPLATE alpaca or vicuna"
            )
        out += [(prompt[len(done) :], False), (full[len(prompt) :], True)]
        done = full
    return out


def leading_special_ids(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts in front of any text (LLaMA's BOS; none for Qwen2 or SmolLM2)."""
    return list(tokenizer("", add_special_tokens=True)["input_ids"])


def tokenize_segments(tokenizer, examples: list[list[tuple[str, bool]]], prefix: list[int], eos: bool) -> dict:
    """Token ids of each example's segments, labels only on the supervised ones; ``prefix`` first and (with
    ``eos``) EOS after every supervised segment. All segments of a batch go through the tokenizer at once."""
    texts = [text for example in examples for text, _ in example]
    pieces = iter(tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else iter(())
    all_ids, all_labels = [], []
    for example in examples:
        ids, labels = list(prefix), [IGNORE_INDEX] * len(prefix)
        for _, supervised in example:
            piece = next(pieces)
            if supervised and eos:
                piece = piece + [tokenizer.eos_token_id]
            ids += piece
            labels += piece if supervised else [IGNORE_INDEX] * len(piece)
        all_ids.append(ids)
        all_labels.append(labels)
    return {"input_ids": all_ids, "labels": all_labels}


def tokenize_supervised(tokenizer, parts: list[tuple[str, bool]], prefix: list[int] | None = None) -> dict:
    """One example (see :func:`tokenize_segments`); the tokenizer's leading special tokens by default."""
    out = tokenize_segments(tokenizer, [parts], leading_special_ids(tokenizer) if prefix is None else prefix, True)
    return {k: v[0] for k, v in out.items()}


def alpaca_example(record: dict, tokenizer, prefix: list[int] | None = None) -> dict:
    return tokenize_supervised(tokenizer, segments(record, "alpaca", "alpaca", tokenizer), prefix)


def sharegpt_example(record: dict, tokenizer, prefix: list[int] | None = None) -> dict:
    """Vicuna v1.1: ``SYSTEM USER: q ASSISTANT: a</s>USER: ...``; a conversation must start with the human."""
    parts = segments(record, "sharegpt", "vicuna", tokenizer)
    return tokenize_supervised(tokenizer, parts, prefix) if parts else {"input_ids": [], "labels": []}


# ---------------------------------------------------------------------------------------------------
# Reading records (streamed, checked, into Arrow)
# ---------------------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a UTF-8 file; other encodings are named with the line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{number}: not UTF-8 text ({err.reason}); save the file as UTF-8") from err


def read_raw(path: Path) -> Iterator[tuple[str, object]]:
    """``(where, record)`` pairs of one file, streamed except for a ``.json`` list (read whole)."""
    if not path.is_file():
        raise FileNotFoundError(f"DATA.PATH={str(path)!r} does not exist")
    if path.suffix == ".txt":
        block, start = [], 1
        for number, line in _lines(path):
            if line.strip():
                if not block:
                    start = number
                block.append(line.rstrip("\n"))
            elif block:
                yield f"{path}:{start}", {"text": "\n".join(block).strip()}
                block = []
        if block:
            yield f"{path}:{start}", {"text": "\n".join(block).strip()}
    elif path.suffix == ".jsonl":
        for number, line in _lines(path):
            if line.strip():
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
    else:
        text = "".join(line for _, line in _lines(path))
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON at line {err.lineno} ({err.msg})") from err
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
        for number, record in enumerate(records):
            yield f"{path}: record {number}", record


def checked_record(record: object, fmt: str, where: str) -> dict:
    """The record's fields for ``fmt`` (others dropped, Alpaca's ``input`` defaulting to ""), or an error
    naming the record and what was expected."""
    if not isinstance(record, dict):
        raise ValueError(f"{where} is a {type(record).__name__}, expected an object")
    required = {"alpaca": ("instruction", "output"), "sharegpt": ("conversations",), "text": ("text",)}[fmt]
    missing = [f for f in required if f not in record]
    if missing:
        raise ValueError(f"{where} lacks {missing} (DATA.FORMAT {fmt} needs {list(required)})")
    if fmt == "sharegpt":
        turns = record["conversations"]
        if not isinstance(turns, list):
            raise ValueError(f"{where}: 'conversations' is {type(turns).__name__}, expected a list of turns")
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict) or not isinstance(turn.get("from"), str):
                raise ValueError(f"{where}: turn {i} must be an object with a string 'from' (human | gpt)")
            if not isinstance(turn.get("value"), str):
                raise ValueError(f"{where}: turn {i} ('from': {turn['from']!r}) needs a string 'value'")
        return {"conversations": [{"from": t["from"], "value": t["value"]} for t in turns]}
    fields = {"alpaca": ("instruction", "input", "output"), "text": ("text",)}[fmt]
    out = {}
    for field in fields:
        value = record.get(field, "")
        if value is None and field == "input":
            value = ""
        if not isinstance(value, str):
            raise ValueError(f"{where}: field {field!r} is {type(value).__name__}, expected a string")
        out[field] = value
    return out


def _generate_records(files: list[str], fmt: str, limit: int, stamp: str) -> Iterator[dict]:
    """The generator ``Dataset.from_generator`` runs (``stamp`` only makes the cache key change with the files)."""
    count = 0
    for file in files:
        for where, record in read_raw(Path(file)):
            if limit and count >= limit:
                return
            yield checked_record(record, fmt, where)
            count += 1


def data_files(path_text: str) -> list[Path]:
    """The files ``DATA.PATH`` names (a file, or the data files of a folder); [] for a hub dataset name."""
    if not path_text:
        raise ValueError("DATA.PATH is empty: give an Alpaca/ShareGPT JSON(L) file, a folder or a hub dataset name")
    path = Path(path_text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in DATA_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"DATA.PATH={path_text!r} holds no .json, .jsonl or .txt files")
        return files
    if path.suffix in DATA_SUFFIXES or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"DATA.PATH={path_text!r} does not exist")
        return [path]
    return []


def files_stamp(files: list[Path]) -> str:
    """A cheap identity of the files' current contents (path, size, modification time)."""
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def _generate_hub_records(name: str, fmt: str, limit: int, cache_dir: str | None) -> Iterator[dict]:
    """The first ``limit`` records of a hub dataset's train split, streamed (only what is read is fetched)."""
    from datasets import load_dataset

    stream = load_dataset(name, split="train", streaming=True, cache_dir=cache_dir)
    for number, record in enumerate(stream.take(limit)):
        yield checked_record(record, fmt, f"hub dataset {name}: record {number}")


def _to_arrow(generator, kwargs: dict, fmt: str, cache_dir: str | None) -> Dataset:
    """The generator's records written to an Arrow file in the cache (reused while ``kwargs`` are the same)."""
    fingerprint = hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode()).hexdigest()[:16]
    try:
        return Dataset.from_generator(
            generator, features=FEATURES[fmt], gen_kwargs=kwargs, cache_dir=cache_dir, fingerprint=fingerprint
        )
    except DatasetGenerationError as err:  # our own message (file, record, what was expected) is the cause
        raise (err.__cause__ or err) from None


def load_records(cfg: CfgNode) -> tuple[Dataset, str]:
    """Records as an Arrow dataset: files streamed into the ``datasets`` cache; a hub dataset's train split
    (streamed, when ``DATA.MAX_RECORDS`` limits it, so that 200,000 OpenWebText documents do not need the
    whole corpus on disk); at most ``DATA.MAX_RECORDS`` of them when that is set."""
    fmt, limit, name = cfg.DATA.FORMAT, cfg.DATA.MAX_RECORDS, cfg.DATA.PATH
    files = data_files(name)
    cache_dir = cfg.DATA.CACHE_DIR or None
    if files:
        kwargs = {"files": [str(f) for f in files], "fmt": fmt, "limit": limit, "stamp": files_stamp(files)}
        return _to_arrow(_generate_records, kwargs, fmt, cache_dir), name
    if limit:
        kwargs = {"name": name, "fmt": fmt, "limit": limit, "cache_dir": cache_dir}
        return _to_arrow(_generate_hub_records, kwargs, fmt, cache_dir), name
    from datasets import load_dataset

    records = load_dataset(name, split="train", cache_dir=cache_dir)
    needed = list(FEATURES[fmt])
    missing = [c for c in needed if c not in records.column_names and c != "input"]
    if missing:
        raise ValueError(f"hub dataset {name}: no column {missing} (DATA.FORMAT {fmt}; has {records.column_names})")
    return records.select_columns([c for c in needed if c in records.column_names]), name


# ---------------------------------------------------------------------------------------------------
# Tokenising, length policy, blocks
# ---------------------------------------------------------------------------------------------------


def _tokenize_batch(batch: dict, tokenizer, fmt: str, template: str, prefix: list[int]) -> dict:
    records = [dict(zip(batch, values)) for values in zip(*batch.values())]
    examples = [segments(record, fmt, template, tokenizer) for record in records]
    return tokenize_segments(tokenizer, examples, prefix, eos=template != "chat")


def _length_policy_batch(batch: dict, indices: list[int], max_length: int, policy: str) -> dict:
    """Applies the length policy, then marks examples with no supervised token left (``drop`` column: "" keeps)."""
    out = {"input_ids": [], "labels": [], "drop": [], "length": []}
    for index, ids, labels in zip(indices, batch["input_ids"], batch["labels"]):
        had_target = any(label != IGNORE_INDEX for label in labels)
        reason, original = "", len(ids)
        if len(ids) > max_length:
            if policy == "raise":
                raise ValueError(
                    f"example {index} has {len(ids)} tokens, DATA.MAX_LENGTH is {max_length} (DATA.TOO_LONG raise)"
                )
            if policy == "drop":
                reason = "too_long"
            ids, labels = ids[:max_length], labels[:max_length]
        if not reason and not any(label != IGNORE_INDEX for label in labels):
            reason = "target_truncated" if had_target else "no_target"
        out["length"].append(original)
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["drop"].append(reason)
    return out


def _blocks_batch(batch: dict, tokenizer, block_size: int, prefix: list[int]) -> dict:
    """Documents (each with the tokenizer's leading special tokens, the original's BOS per document; EOS after
    each where the tokenizer puts nothing in front) joined and cut into full blocks, as ``run_clm``'s
    ``group_texts``: the remainder of each batch of documents is dropped; labels = inputs."""
    tail = [] if prefix else [tokenizer.eos_token_id]
    stream: list[int] = []
    for ids in tokenizer(batch["text"], add_special_tokens=False)["input_ids"]:
        stream += prefix + ids + tail
    usable = len(stream) // block_size * block_size
    blocks = [stream[i : i + block_size] for i in range(0, usable, block_size)]
    return {"input_ids": blocks, "labels": [list(b) for b in blocks]}


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


def _check_data_cfg(cfg: CfgNode) -> None:
    data = cfg.DATA
    problems = []
    if data.FORMAT not in FORMATS:
        problems.append(f"DATA.FORMAT must be one of {FORMATS}, got {data.FORMAT!r}")
    if data.TOO_LONG not in TOO_LONG:
        problems.append(f"DATA.TOO_LONG must be one of {TOO_LONG}, got {data.TOO_LONG!r}")
    if not 0 <= data.EVAL_FRACTION < 1:
        problems.append(f"DATA.EVAL_FRACTION={data.EVAL_FRACTION} must be in [0, 1): the rest is the training set")
    for key in ("MAX_LENGTH", "BLOCK_SIZE", "NUM_PROC"):
        if data[key] < 1:
            problems.append(f"DATA.{key}={data[key]} must be at least 1")
    if data.MAX_RECORDS < 0:
        problems.append(f"DATA.MAX_RECORDS={data.MAX_RECORDS} must be 0 (all) or positive")
    if problems:
        raise ValueError("; ".join(problems))


def tokenize_records(cfg: CfgNode, records: Dataset, tokenizer, source: str) -> Dataset:
    """Tokenised examples: blocks of raw text, or templated examples after the length policy, without those
    left with nothing to learn (how many were dropped, and why, is logged)."""
    num_proc = cfg.DATA.NUM_PROC if cfg.DATA.NUM_PROC > 1 else None
    prefix = leading_special_ids(tokenizer)
    columns = records.column_names
    if cfg.DATA.FORMAT == "text":
        return records.map(
            _blocks_batch,
            batched=True,
            remove_columns=columns,
            num_proc=num_proc,
            fn_kwargs={"tokenizer": tokenizer, "block_size": cfg.DATA.BLOCK_SIZE, "prefix": prefix},
            desc=f"tokenising and grouping into {cfg.DATA.BLOCK_SIZE}-token blocks",
        )
    template = resolve_template(cfg)
    if template == "chat":
        check_chat_template(tokenizer)
        prefix = []  # the chat template writes its own leading tokens
    examples = records.map(
        _tokenize_batch,
        batched=True,
        remove_columns=columns,
        num_proc=num_proc,
        fn_kwargs={"tokenizer": tokenizer, "fmt": cfg.DATA.FORMAT, "template": template, "prefix": prefix},
        desc=f"tokenising ({template} template)",
    )
    max_length, policy = cfg.DATA.MAX_LENGTH, cfg.DATA.TOO_LONG
    examples = examples.map(
        _length_policy_batch,
        batched=True,
        with_indices=True,
        num_proc=num_proc,
        fn_kwargs={"max_length": max_length, "policy": policy},
        desc=f"length policy ({policy} at {max_length})",
    )
    total = len(examples)
    drops = Counter(examples["drop"])
    kept = drops.pop("", 0)
    too_long = sum(1 for n in examples["length"] if n > max_length)
    if too_long:
        action = {"truncate": "truncated", "drop": "dropped", "raise": "stopping"}[policy]
        logger.info("%d of %d examples are longer than DATA.MAX_LENGTH=%d: %s", too_long, total, max_length, action)
    for reason, count in sorted(drops.items()):
        logger.info("dropped %d of %d examples: %s", count, total, DROP_REASONS[reason])
    if not kept:
        raise ValueError(
            f"{source}: no training examples left after tokenising and the length policy "
            f"({dict(drops)} of {total}); every example needs a response token within DATA.MAX_LENGTH={max_length} "
            "(raise DATA.MAX_LENGTH, or shorten the prompts)"
        )
    if drops:
        examples = examples.filter(lambda reasons: [r == "" for r in reasons], input_columns="drop", batched=True)
    return examples.remove_columns(["drop", "length"])


def build_datasets(cfg: CfgNode, tokenizer) -> tuple[Dataset, Dataset | None]:
    """Tokenised train and held-out datasets (``DATA.EVAL_FRACTION``, seeded), Arrow-backed on disk."""
    _check_data_cfg(cfg)
    records, source = load_records(cfg)
    if len(records) == 0:
        raise ValueError(f"{source}: no records (DATA.FORMAT {cfg.DATA.FORMAT})")
    logger.info("%s: %d records (DATA.FORMAT %s)", source, len(records), cfg.DATA.FORMAT)
    examples = tokenize_records(cfg, records, tokenizer, source)
    if len(examples) == 0:
        raise ValueError(
            f"{source}: the text is shorter than one DATA.BLOCK_SIZE={cfg.DATA.BLOCK_SIZE}-token block"
            if cfg.DATA.FORMAT == "text"
            else f"{source}: no training examples left after tokenising and filtering"
        )
    logger.info("example 0 ([masked] tokens take no loss):\n%s", describe_example(examples[0], tokenizer))
    n_eval = int(round(len(examples) * cfg.DATA.EVAL_FRACTION))
    if n_eval >= len(examples):
        raise ValueError(
            f"DATA.EVAL_FRACTION={cfg.DATA.EVAL_FRACTION} holds out all {len(examples)} examples; lower it"
        )
    if n_eval == 0:
        logger.info("%s: %d training examples, none held out", source, len(examples))
        return examples, None
    split = examples.train_test_split(test_size=n_eval, shuffle=True, seed=cfg.SEED)
    logger.info("%s: %d training examples, %d held out", source, len(split["train"]), n_eval)
    return split["train"], split["test"]
