"""Prompts that fit the model: ``generate`` checks each rendered prompt against the model's positions (less
``GENERATE.MAX_NEW_TOKENS``) before the weights load, and stops naming a longer one or keeps its last tokens."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def model_positions(config) -> int | None:
    """The number of positions a model config allows, or None when it names none."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def longest_token_bytes(tokenizer) -> int:
    """The UTF-8 length of the longest vocabulary entry: a text of B bytes takes at least B / this many tokens
    (an overestimate for byte-level and byte-fallback vocabularies, which only loosens the bound)."""
    return max(len(token.encode("utf-8")) for token in tokenizer.get_vocab())


def fit_prompts(
    texts: list[str],
    tokenizer,
    positions: int | None,
    max_new_tokens: int,
    policy: str,
    add_special_tokens: bool,
    labels: list[str] | None = None,
) -> tuple[list[str], int | None]:
    """The prompts, checked to leave ``max_new_tokens`` of the model's ``positions``: a longer one stops the
    run, naming it (``policy`` raise), or keeps its last tokens with a warning (truncate); returns the texts
    (a huge one cut to a bounded tail before it is tokenised) and the token limit to truncate to (None: no
    truncation needed). Memory stays bounded: a prompt whose byte length alone rules it out is never tokenised.
    ``labels``: how to name each prompt (its instruction; the rendered text by default)."""
    if positions is None:
        logger.warning("the model config names no position limit: prompt lengths are not checked")
        return texts, None
    limit = positions - max_new_tokens
    if limit < 1:
        raise ValueError(
            f"GENERATE.MAX_NEW_TOKENS={max_new_tokens} leaves no room for a prompt in the model's {positions} positions"
        )
    widest = limit * longest_token_bytes(tokenizer)  # bytes that cannot fit in `limit` tokens
    out, problems, truncated = [], [], False
    for index, text in enumerate(texts):
        head = (labels[index] if labels else text)[:60].replace("\n", " ")
        if len(text) > widest or len(text.encode("utf-8")) > widest:
            size = f"{len(text.encode('utf-8'))} bytes (more than {limit} tokens can hold)"
            text = text[-widest:] if policy == "truncate" else text
        else:
            n = len(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
            size = f"{n} tokens" if n > limit else ""
        if size:
            if policy != "truncate":
                problems.append(f"prompt {index} ({head!r}...) is {size}")
                continue
            logger.warning(
                "prompt %d (%r...) is %s: keeping its last %d tokens (GENERATE.TOO_LONG truncate)",
                index,
                head,
                size,
                limit,
            )
            truncated = True
        out.append(text)
    if problems:
        raise ValueError(
            "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            + f": a prompt may have {limit} tokens (the model's {positions} positions less "
            f"GENERATE.MAX_NEW_TOKENS={max_new_tokens}); shorten it, lower GENERATE.MAX_NEW_TOKENS, or set "
            "GENERATE.TOO_LONG truncate to keep each prompt's last tokens"
        )
    return out, (limit if truncated else None)
