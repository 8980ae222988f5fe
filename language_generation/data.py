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

Templates live in :mod:`.templates`, reading records in :mod:`.records`. Records are streamed from the
files into an Arrow dataset on disk, tokenised with batched ``map``
(``DATA.NUM_PROC`` processes), and raw text is grouped into ``DATA.BLOCK_SIZE`` blocks as ``transformers``'
``run_clm`` example does, so memory stays flat however large the corpus is. Errors name the file and record.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
from collections import Counter
from collections.abc import Iterator

from datasets import Dataset
from yacs.config import CfgNode

from runkit.cli import UserError

from .records import load_records
from .templates import ALPACA_PROMPTS, TEMPLATES, alpaca_prompt, resolve_template, segments

__all__ = ["ALPACA_PROMPTS", "IGNORE_INDEX", "alpaca_prompt", "build_datasets", "describe_example"]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
FORMATS = ("alpaca", "sharegpt", "text")
TOO_LONG = ("truncate", "drop", "raise")
DROP_REASONS = {
    "too_long": "longer than DATA.MAX_LENGTH (DATA.TOO_LONG drop)",
    "no_target": "nothing to learn (a conversation without an assistant reply after a user turn)",
    "target_truncated": "every response token cut off by truncation to DATA.MAX_LENGTH",
}


def leading_special_ids(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts in front of any text (LLaMA's BOS; none for Qwen2 or SmolLM2)."""
    return list(tokenizer("", add_special_tokens=True)["input_ids"])


def _chunks(example: list[tuple[str, bool]], eos: bool) -> list[list[tuple[str, bool]]]:
    """The example cut where an EOS id goes (after each supervised segment when ``eos``); each chunk is
    tokenised as one text, so that tokens at a prompt/response boundary are the ones the whole text has."""
    if not eos:
        return [example]
    chunks, current = [], []
    for text, supervised in example:
        current.append((text, supervised))
        if supervised:
            chunks.append(current)
            current = []
    return chunks + ([current] if current else [])


def tokenize_segments(tokenizer, examples: list[list[tuple[str, bool]]], prefix: list[int], eos: bool) -> dict:
    """Token ids of each example, labels only on the supervised segments; ``prefix`` first and (with ``eos``)
    EOS after every supervised segment.

    Prompt and response are tokenised as one text, as the original does (``tokenize(source + target)``):
    tokenised apart, a SentencePiece/Metaspace tokenizer starts the response with a word-initial piece
    (``"▁The"`` where ``"### Response:The"`` gives ``"The"``), tokens the model never sees at inference.
    A token takes loss when its characters overlap a supervised segment (offset mapping). All chunks of a
    batch go through the tokenizer at once."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"the tokenizer of {tokenizer.name_or_path!r} is not a fast tokenizer; labels are placed through its "
            "offset mapping (load it with use_fast=True)"
        )
    chunked = [_chunks(example, eos) for example in examples]
    texts = ["".join(text for text, _ in chunk) for chunks in chunked for chunk in chunks]
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True) if texts else None
    pieces = iter(zip(encoded["input_ids"], encoded["offset_mapping"])) if texts else iter(())
    all_ids, all_labels = [], []
    for chunks in chunked:
        ids, labels = list(prefix), [IGNORE_INDEX] * len(prefix)
        for chunk in chunks:
            piece, offsets = next(pieces)
            spans, start = [], 0
            for text, supervised in chunk:
                if supervised:
                    spans.append((start, start + len(text)))
                start += len(text)
            for token, (begin, end) in zip(piece, offsets):
                ids.append(token)
                taught = any(begin < stop and end > first for first, stop in spans)
                labels.append(token if taught else IGNORE_INDEX)
            if eos and chunk[-1][1]:
                ids.append(tokenizer.eos_token_id)
                labels.append(tokenizer.eos_token_id)
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
# Tokenising (batched map), length policy, blocks
# ---------------------------------------------------------------------------------------------------


def _tokenize_batch(
    batch: dict,
    indices: list[int],
    tokenizer,
    fmt: str,
    template: str,
    prefix: list[int],
    max_length: int,
    policy: str,
) -> dict:
    """Templated, tokenised examples after the length policy (one pass over the records)."""
    records = [dict(zip(batch, values)) for values in zip(*batch.values())]
    examples = [segments(record, fmt, template, tokenizer) for record in records]
    tokens = tokenize_segments(tokenizer, examples, prefix, eos=not TEMPLATES[template].own_special_tokens)
    return _length_policy_batch(tokens, indices, max_length, policy)


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
    template.check(tokenizer)
    if template.own_special_tokens:
        prefix = []  # the template writes its own leading tokens
    max_length, policy = cfg.DATA.MAX_LENGTH, cfg.DATA.TOO_LONG
    examples = records.map(
        _tokenize_batch,
        batched=True,
        with_indices=True,
        remove_columns=columns,
        num_proc=num_proc,
        fn_kwargs={
            "tokenizer": tokenizer,
            "fmt": cfg.DATA.FORMAT,
            "template": template.name,
            "prefix": prefix,
            "max_length": max_length,
            "policy": policy,
        },
        desc=f"tokenising ({template.name} template; {policy} at {max_length} tokens)",
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


_CACHE_WRITE_FAILURES = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def datasets_cache_writes(cfg: CfgNode) -> Iterator[None]:
    """Names the way out when the ``datasets`` cache (``HF_HOME``'s, with ``DATA.CACHE_DIR`` empty) cannot be
    written: a read-only or full home is common on shared machines, and the bare OSError names only a folder."""
    try:
        yield
    except OSError as err:
        if cfg.DATA.CACHE_DIR or err.errno not in _CACHE_WRITE_FAILURES:
            raise
        from datasets import config as datasets_config

        raise UserError(
            f"the datasets cache {datasets_config.HF_DATASETS_CACHE} (from HF_HOME) cannot be written "
            f"({err.filename or ''}: {err.strerror or err}); set DATA.CACHE_DIR to a folder you may write, where "
            "the tokenised data will go"
        ) from err


def build_datasets(cfg: CfgNode, tokenizer) -> tuple[Dataset, Dataset | None]:
    """Tokenised train and held-out datasets (``DATA.EVAL_FRACTION``, seeded), Arrow-backed on disk."""
    _check_data_cfg(cfg)
    with datasets_cache_writes(cfg):
        return _build_datasets(cfg, tokenizer)


def _build_datasets(cfg: CfgNode, tokenizer) -> tuple[Dataset, Dataset | None]:
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
    order = list(range(len(examples)))
    random.Random(cfg.SEED).shuffle(order)  # seeded; both parts keep the file's order
    train, held_out = examples.select(sorted(order[n_eval:])), examples.select(sorted(order[:n_eval]))
    logger.info("%s: %d training examples, %d held out", source, len(train), n_eval)
    return train, held_out
