"""Scoring a tuned model on exact-answer records: greedy exact match and the answer loss, per item."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import IGNORE_INDEX, alpaca_example, alpaca_prompt


@torch.no_grad()
def answer_losses(model, tokenizer, records: list[dict], batch: int = 16) -> list[tuple[float, int]]:
    """``(summed cross-entropy, tokens)`` of each record's answer + EOS (prompt masked, as in training)."""
    out = []
    for start in range(0, len(records), batch):
        examples = [alpaca_example(r, tokenizer) for r in records[start : start + batch]]
        width = max(len(e["input_ids"]) for e in examples)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([e["input_ids"] + [pad] * (width - len(e["input_ids"])) for e in examples])
        labels = torch.tensor([e["labels"] + [IGNORE_INDEX] * (width - len(e["labels"])) for e in examples])
        mask = torch.tensor([[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples])
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        losses = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="none")
        counts = (target != IGNORE_INDEX).sum(1)
        out += [(float(loss), int(count)) for loss, count in zip(losses.sum(1), counts)]
    return out


@torch.no_grad()
def greedy_answers(model, tokenizer, records: list[dict], max_new_tokens: int, batch: int = 25) -> list[str]:
    """Greedy answers, first line, stripped (left-padded batches; cached two-pass generation for TOAST)."""
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            enc = tokenizer([alpaca_prompt(r) for r in chunk], return_tensors="pt", padding=True)
            gen = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            for row in gen:
                text = tokenizer.decode(row[enc["input_ids"].shape[1] :], skip_special_tokens=True)
                answers.append(text.strip().split("\n")[0].strip())
    finally:
        tokenizer.padding_side = "right"
    return answers


def score(model, tokenizer, records: list[dict], generate: bool) -> dict:
    """Per item: the answer loss (and, with ``generate``, the greedy answer and whether it is exact)."""
    model.eval()
    losses = answer_losses(model, tokenizer, records)
    items = [{"family": r["family"], "loss": loss, "tokens": n} for r, (loss, n) in zip(records, losses)]
    if generate:
        longest = max(len(tokenizer(r["output"], add_special_tokens=False)["input_ids"]) for r in records)
        for item, record, answer in zip(items, records, greedy_answers(model, tokenizer, records, longest + 3)):
            item.update(answer=answer, exact=answer == record["output"])
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
