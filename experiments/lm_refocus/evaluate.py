"""Scoring a tuned model on exact-answer records: greedy exact match and the answer loss, per item.

Both come from one forward pass over each prompt + answer: its logits at the answer positions give the answer
loss (teacher-forced, as in training), the logit at the prompt's last position gives the first greedy token,
and the KV cache, cut back to the prompt, carries the greedy decoding on. The prompt is thus read once rather
than once for the loss and once for generation (scoring is prefill-bound: prompts of 45-85 tokens, answers of
a few), and the model is conditioned on the prompt exactly as training tokenised it (prompt and answer as
one text). TOAST models score with their top-down path folded into one matrix (``folded_feedback``), as
their ``generate`` does.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from language_generation.data import IGNORE_INDEX, alpaca_example


def _eos_ids(model) -> set[int]:
    """The token ids that end a greedy answer: the model's ``generation_config`` ones, as ``generate`` reads."""
    config = getattr(model, "generation_config", None) or getattr(model.base, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    return set() if eos is None else {eos} if isinstance(eos, int) else set(eos)


def first_line(text: str) -> str:
    """The scored answer: the first line of the generated text, stripped."""
    return text.strip().split("\n")[0].strip()


def _common_prefix(rows: list[list[int]], limit: int) -> int:
    """How many leading tokens every row shares (at most ``limit``)."""
    n = 0
    while n < limit and all(row[n] == rows[0][n] for row in rows):
        n += 1
    return n


def _batch(examples: list[dict], pad: int) -> tuple[list[int], torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """The tokens every example starts with (the template, often the instruction too), then the rest of each
    prompt left-padded to one width and its answer (+ EOS) right-padded after it: the shared prefix, ids, mask,
    the rest's prompt width, and the answer targets (``IGNORE_INDEX`` on padding). Every prompt keeps at least
    one token after the prefix, whose logit predicts the answer's first token."""
    prompts = [sum(1 for t in e["labels"] if t == IGNORE_INDEX) for e in examples]
    for e, n in zip(examples, prompts):
        if n == 0 or any(t != IGNORE_INDEX for t in e["labels"][:n]):
            raise ValueError(f"an exact-answer example must be a prompt then its answer; got labels {e['labels']}")
    shared = _common_prefix([e["input_ids"] for e in examples], min(prompts) - 1)
    width = max(prompts) - shared
    answer_width = max(len(e["input_ids"]) - n for e, n in zip(examples, prompts))
    ids, mask, targets = [], [], []
    for e, n in zip(examples, prompts):
        answer = e["input_ids"][n:]
        left, right = width - (n - shared), answer_width - len(answer)
        ids.append([pad] * left + e["input_ids"][shared:] + [pad] * right)
        mask.append([0] * left + [1] * (len(e["input_ids"]) - shared) + [0] * right)
        targets.append(answer + [IGNORE_INDEX] * right)
    prefix = examples[0]["input_ids"][:shared]
    return prefix, torch.tensor(ids), torch.tensor(mask), width, torch.tensor(targets)


@torch.no_grad()
def score_batch(model, examples: list[dict], pad: int, max_new_tokens: int | None) -> list[dict]:
    """Per example: ``loss`` (summed cross-entropy of answer + EOS), ``tokens``, and with ``max_new_tokens``
    the greedy continuation's token ids (``answer_ids``), stopped at the model's EOS as ``generate`` stops.

    The prefix every example shares runs once (batch 1) and its KV cache is repeated over the batch, so that
    only the rest of each prompt (and its answer) runs per example. Causal attention makes this exact up to
    float rounding; a TOAST model's top-down signal is per token, so its pass-2 cache is shared the same way.
    """
    prefix, ids, mask, width, targets = _batch(examples, pad)
    rows, shared = len(examples), len(prefix)
    cache = None
    if shared:
        cache = model(input_ids=torch.tensor([prefix]), use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(rows)
    full_mask = torch.cat([torch.ones(rows, shared, dtype=mask.dtype), mask], 1)
    positions = shared + (mask.cumsum(1) - 1).clamp(min=0)
    out = model(
        input_ids=ids,
        attention_mask=full_mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=targets.shape[1] + 1,  # the prompt's last position and every answer position
    )
    logits = out.logits[:, :-1].float()
    losses = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none").sum(1)
    counts = (targets != IGNORE_INDEX).sum(1)
    results = [{"loss": float(loss), "tokens": int(n)} for loss, n in zip(losses, counts)]
    if max_new_tokens is None:
        return results
    cache = out.past_key_values
    cache.crop(width - ids.shape[1])  # back to the prompts (a negative count: tokens to remove)
    eos = _eos_ids(model)
    next_token = logits[:, 0].argmax(-1)
    done = torch.zeros(rows, dtype=torch.bool)
    step_mask, step_positions = full_mask[:, : shared + width], positions[:, width - 1]
    answers: list[list[int]] = [[] for _ in examples]
    for step in range(max_new_tokens):
        next_token = torch.where(done, torch.full_like(next_token, pad), next_token)
        for row, token in enumerate(next_token.tolist()):
            if not done[row]:
                answers[row].append(token)
        done |= torch.tensor([t in eos for t in next_token.tolist()])
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        step_mask = torch.cat([step_mask, torch.ones(rows, 1, dtype=mask.dtype)], 1)
        step_positions = step_positions + 1
        out = model(
            input_ids=next_token[:, None],
            attention_mask=step_mask,
            position_ids=step_positions[:, None],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache, next_token = out.past_key_values, out.logits[:, -1].float().argmax(-1)
    for result, answer in zip(results, answers):
        result["answer_ids"] = answer
    return results


def score(model, tokenizer, records: list[dict], generate: bool, batch: int = 50) -> dict:
    """Per item: the answer loss (and, with ``generate``, the greedy answer's first line, stripped, and whether
    it is exact). Items go through in batches of similar length (less padding); the order returned is theirs."""
    model.eval()
    examples = [alpaca_example(r, tokenizer) for r in records]
    max_new = None
    if generate:
        max_new = max(len(tokenizer(r["output"], add_special_tokens=False)["input_ids"]) for r in records) + 3
    order = sorted(range(len(records)), key=lambda i: len(examples[i]["input_ids"]))
    scored: dict[int, dict] = {}
    folded = model.folded_feedback() if hasattr(model, "folded_feedback") else contextlib.nullcontext()
    with folded:
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            found = score_batch(model, [examples[i] for i in chunk], tokenizer.pad_token_id, max_new)
            scored.update(zip(chunk, found))
    items = []
    for i, record in enumerate(records):
        item = {"family": record["family"], "loss": scored[i]["loss"], "tokens": scored[i]["tokens"]}
        if generate:
            answer = first_line(tokenizer.decode(scored[i]["answer_ids"], skip_special_tokens=True))
            item.update(answer=answer, exact=answer == record["output"])
        items.append(item)
    return {"items": items}


def per_family(items: list[dict], key: str) -> dict[str, float]:
    """Exact match (%) or answer loss (per answer token) per family and ``all``."""
    groups: dict[str, list[dict]] = {}
    for item in items:
        groups.setdefault(item["family"], []).append(item)
        groups.setdefault("all", []).append(item)
    if key == "exact":
        return {f: 100.0 * sum(i["exact"] for i in g) / len(g) for f, g in groups.items()}
    return {f: sum(i["loss"] for i in g) / sum(i["tokens"] for i in g) for f, g in groups.items()}
