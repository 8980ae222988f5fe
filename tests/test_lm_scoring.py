"""The refocus experiment's scorer and the trainer's head-on-supervised-positions path against plain references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lm_helpers import tiny_base, tiny_toast
from test_lm_data import tokenizer  # noqa: F401  (fixture)
from transformers import TrainingArguments

from experiments.lm_refocus.evaluate import _batch, first_line, score
from language_generation.data import IGNORE_INDEX, alpaca_example
from language_generation.methods import TRANSFER_METHODS
from language_generation.train import ToastTrainer, accepts_logits_to_keep, supervised_logits_only

RECORDS = [
    {"instruction": "add 2 and 3", "input": "", "output": "5", "family": "add"},
    {"instruction": "add 4 and 6 and 7", "input": "", "output": "1 7", "family": "add"},
    {"instruction": "say hi", "input": "hello world", "output": "hi", "family": "say"},
    {"instruction": "add 8 and 9", "input": "", "output": "1 7 .", "family": "add"},
    {"instruction": "say hello", "input": "", "output": "hello world !", "family": "say"},
    {"instruction": "write a response", "input": "hello", "output": "hi", "family": "say"},
]


def lively(model, std: float = 0.2):
    """The tiny model with larger random weights, so that its greedy answers differ from record to record (at the
    library's init it says the same token everywhere, and a wrong cache or mask would go unseen)."""
    gen = torch.Generator().manual_seed(5)
    base = model.base if hasattr(model, "base") else model
    with torch.no_grad():
        for name, p in base.named_parameters():
            if "norm" not in name:
                p.copy_(std * torch.randn(p.shape, generator=gen))
    return model


def reference(model, tokenizer, record, max_new_tokens):  # noqa: F811
    """One record alone, no padding, no shared cache: the full-text answer loss and ``generate``'s greedy tokens."""
    example = alpaca_example(record, tokenizer)
    ids, n = example["input_ids"], sum(1 for t in example["labels"] if t == IGNORE_INDEX)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
        loss = F.cross_entropy(logits[n - 1 : -1], torch.tensor(ids[n:]), reduction="sum")
        out = model.generate(input_ids=torch.tensor([ids[:n]]), max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    return float(loss), len(ids) - n, out[0, n:].tolist()


@pytest.mark.parametrize("kind", ["base", "toast"])
def test_scores_equal_one_record_at_a_time_with_generate(kind, tokenizer):  # noqa: F811
    model = lively(tiny_base("llama", seed=3) if kind == "base" else tiny_toast("llama", seed=3))
    items = score(model, tokenizer, RECORDS, generate=True, batch=4)["items"]  # 2 batches, of mixed lengths
    longest = max(len(tokenizer(r["output"], add_special_tokens=False)["input_ids"]) for r in RECORDS) + 3
    for record, item in zip(RECORDS, items):
        loss, tokens, greedy = reference(model, tokenizer, record, longest)
        assert item["family"] == record["family"] and item["tokens"] == tokens
        assert item["loss"] == pytest.approx(loss, rel=1e-4, abs=1e-4)
        assert item["answer"] == first_line(tokenizer.decode(greedy, skip_special_tokens=True)), record
        assert item["exact"] == (item["answer"] == record["output"])
    assert len({item["answer"] for item in items}) == len(RECORDS)  # answers that tell a wrong cache apart


def test_the_shared_prefix_runs_once(tokenizer):  # noqa: F811
    examples = [alpaca_example(r, tokenizer) for r in RECORDS if not r["input"]]
    prefix, ids, mask, width, targets = _batch(examples, tokenizer.pad_token_id)
    prompts = [sum(1 for t in e["labels"] if t == IGNORE_INDEX) for e in examples]
    assert len(prefix) >= 10 and all(e["input_ids"][: len(prefix)] == prefix for e in examples)
    assert len(prefix) < min(prompts)  # every row keeps a prompt token, whose logit predicts the answer
    assert width == max(prompts) - len(prefix) and ids.shape == mask.shape == (len(examples), ids.shape[1])
    assert int(mask.sum()) == sum(len(e["input_ids"]) for e in examples) - len(examples) * len(prefix)
    model = tiny_base("llama", seed=3)
    seen = []
    model.model.embed_tokens.register_forward_hook(lambda m, args, out: seen.append(args[0].numel()))
    score(model, tokenizer, [r for r in RECORDS if not r["input"]], generate=False)
    assert seen[0] == len(prefix) and seen[1] == ids.numel()  # the prefix once, then the rest of every row


def test_supervised_logits_only_keeps_the_positions_some_row_supervises():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, -100, -100, 7, -100]])
    out = supervised_logits_only({"input_ids": torch.zeros_like(labels), "labels": labels})
    assert out["logits_to_keep"].tolist() == [1, 2]
    assert out["shift_labels"].tolist() == [[5, 6], [-100, 7]]
    packed = torch.arange(10).view(2, 5)  # every position supervised: left alone
    assert "logits_to_keep" not in supervised_logits_only({"input_ids": packed, "labels": packed})


def _inputs():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 90, (3, 12), generator=gen)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, 8:11], labels[1, 5:7], labels[2, 9:12] = ids[0, 8:11], ids[1, 5:7], ids[2, 9:12]
    mask = torch.ones_like(ids)
    mask[0, 11:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("kind", ["base", "toast", "lora"])
def test_trainer_loss_and_gradients_equal_the_full_heads(kind, tmp_path):
    def build():
        if kind == "toast":
            return tiny_toast("llama", seed=1).train()
        model = tiny_base("llama", seed=1).train()
        if kind == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(
                model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
            )
        return model

    inputs = _inputs()
    full_model = build()
    full = full_model(**inputs).loss
    full.backward()
    model = build()
    assert accepts_logits_to_keep(model)
    heads = []
    head = (
        model.get_base_model().lm_head if kind == "lora" else model.base.lm_head if kind == "toast" else model.lm_head
    )
    head.register_forward_hook(lambda m, args, out: heads.append(args[0].shape[1]))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    method = TRANSFER_METHODS[{"base": "end2end"}.get(kind, kind)]
    kept = ToastTrainer(method=method, model=model, args=args).compute_loss(model, inputs)
    kept.backward()
    assert heads == [6]  # the positions whose next token some row supervises: 4, 5 (row 1), 7-9 (row 0), 10 (row 2)
    assert float(kept) == pytest.approx(float(full), rel=1e-5)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    reference = dict(full_model.named_parameters())
    for name, p in trained:
        torch.testing.assert_close(p.grad, reference[name].grad, rtol=1e-4, atol=1e-6)
