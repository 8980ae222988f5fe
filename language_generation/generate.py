"""Talk to a tuned model: ``python -m language_generation.generate --config-file F [--adapter DIR]
[--prompt TEXT | --prompts-file FILE] [--output FILE] [KEY VALUE ...]``.

Prompts use the Alpaca template (``GENERATE.CHAT_TEMPLATE True``: the tokenizer's chat template, when it has
one); sampling follows ``GENERATE.*`` (temperature 0 = greedy).
Tokens stream to the terminal; ``--output`` writes a JSON list of ``{instruction, output}`` records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from transformers import TextStreamer

from toast.files import atomic_write_text

from .data import alpaca_prompt
from .model import ToastCausalLM, build_model, build_tokenizer
from .train import load_config


def read_prompts(args) -> list[str]:
    if args.prompt:
        return [args.prompt]
    if args.prompts_file:
        path = Path(args.prompts_file)
        if not path.is_file():
            raise FileNotFoundError(f"--prompts-file {path} does not exist")
        if path.suffix == ".json":
            return [r["instruction"] if isinstance(r, dict) else str(r) for r in json.loads(path.read_text())]
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    raise ValueError("give --prompt TEXT or --prompts-file FILE")


def render(tokenizer, instruction: str, chat: bool) -> str:
    if chat:
        if tokenizer.chat_template is None:
            raise ValueError("GENERATE.CHAT_TEMPLATE is set, but this tokenizer has no chat template")
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
        )
    return alpaca_prompt({"instruction": instruction, "input": ""})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="")
    parser.add_argument("--adapter", default="", help="a TOAST adapter folder (a training run's OUTPUT_DIR)")
    parser.add_argument("--prompt", default="")
    parser.add_argument("--prompts-file", default="", help="a .txt file (one prompt a line) or a JSON list")
    parser.add_argument("--output", default="", help="write [{instruction, output}, ...] here")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config_file, args.opts)
        prompts = read_prompts(args)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    tokenizer = build_tokenizer(cfg)
    model = build_model(cfg).eval()
    if args.adapter:
        if not isinstance(model, ToastCausalLM):
            sys.exit("error: --adapter takes a TOAST adapter; use MODEL.TRANSFER_TYPE toast or toast-lite")
        model.load_adapter(args.adapter)
    gen = cfg.GENERATE
    sampling = dict(do_sample=gen.TEMPERATURE > 0, max_new_tokens=gen.MAX_NEW_TOKENS)
    if gen.TEMPERATURE > 0:
        sampling.update(temperature=gen.TEMPERATURE, top_k=gen.TOP_K, top_p=gen.TOP_P)
    records = []
    for instruction in prompts:
        enc = tokenizer(render(tokenizer, instruction, gen.CHAT_TEMPLATE), return_tensors="pt")
        print(f"\n### {instruction}\n", flush=True)
        with torch.no_grad():
            out = model.generate(
                **enc,
                streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True),
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
        text = tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        records.append({"instruction": instruction, "output": text})
    if args.output:
        atomic_write_text(args.output, json.dumps(records, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
