"""Peak memory of preparing LM data (pre-tuning text, Alpaca records) for a corpus and one 10× larger.

    python benchmarks/lm_data_memory.py                    # 5 MB and 50 MB of synthetic text, both formats
    python benchmarks/lm_data_memory.py --mb 2 --formats text --no-in-memory

Each preparation runs in a fresh process (peak resident set, VmHWM): ``build_datasets`` as training uses
it (records streamed into Arrow on disk, batched ``map`` tokenisation, ``run_clm``-style blocks), and, for
comparison, the in-memory way (every record in a Python list, one Python token
list, ``Dataset.from_list``). The corpus is synthetic words and the tokenizer a word-level one built
offline, so nothing is downloaded; both are written to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import current_peak_mib, in_fresh_process  # noqa: E402

VOCAB = 5000
WORDS_PER_DOC = 400


def make_tokenizer(folder: Path) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(VOCAB)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.pad_token = tok.eos_token
    tok.save_pretrained(folder)
    return str(folder)


def write_corpus(path: Path, megabytes: float, fmt: str, seed: int = 0) -> int:
    """Synthetic documents (text: a .txt of blank-line separated documents; alpaca: JSONL records)."""
    rng = random.Random(seed)
    target, written, docs = int(megabytes * 2**20), 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            words = " ".join(f"w{rng.randrange(VOCAB)}" for _ in range(WORDS_PER_DOC))
            if fmt == "text":
                chunk = words + "\n\n"
            else:
                cut = WORDS_PER_DOC // 4
                head, tail = words.split(" ")[:cut], words.split(" ")[cut:]
                chunk = (
                    json.dumps(
                        {"instruction": " ".join(head[:20]), "input": " ".join(head[20:]), "output": " ".join(tail)}
                    )
                    + "\n"
                )
            f.write(chunk)
            written += len(chunk)
            docs += 1
    return docs


def prepare_arrow(tokenizer_dir: str, corpus: str, fmt: str, cache: str) -> dict:
    from transformers import AutoTokenizer

    from language_generation.config import get_cfg
    from language_generation.data import build_datasets

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = get_cfg()
    cfg.DATA.PATH, cfg.DATA.FORMAT, cfg.DATA.EVAL_FRACTION, cfg.DATA.CACHE_DIR = corpus, fmt, 0.0, cache
    cfg.DATA.BLOCK_SIZE = cfg.DATA.MAX_LENGTH = 512
    start = time.perf_counter()
    train, _ = build_datasets(cfg, tok)
    n = sum(len(ids) for batch in train.iter(batch_size=1000) for ids in batch["input_ids"])  # read it all once
    return {
        "examples": len(train),
        "tokens": n,
        "seconds": time.perf_counter() - start,
        "peak_mib": current_peak_mib("cpu"),
    }


def prepare_in_memory(tokenizer_dir: str, corpus: str, fmt: str, cache: str) -> dict:
    """The previous in-memory preparation: records in a list, one Python token stream, ``Dataset.from_list``."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    start = time.perf_counter()
    text = Path(corpus).read_text(encoding="utf-8")
    if fmt == "text":
        records = [{"text": block.strip()} for block in text.split("\n\n") if block.strip()]
        stream: list[int] = []
        for record in records:
            stream += tok(record["text"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        usable = len(stream) // 512 * 512
        examples = [{"input_ids": stream[i : i + 512], "labels": stream[i : i + 512]} for i in range(0, usable, 512)]
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        examples = []
        for r in records:
            prompt = tok(r["instruction"] + " " + r["input"], add_special_tokens=False)["input_ids"]
            answer = tok(r["output"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            examples.append({"input_ids": (prompt + answer)[:512], "labels": ([-100] * len(prompt) + answer)[:512]})
    train = Dataset.from_list(examples)
    n = sum(len(ids) for ids in train["input_ids"])
    return {
        "examples": len(train),
        "tokens": n,
        "seconds": time.perf_counter() - start,
        "peak_mib": current_peak_mib("cpu"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=5.0, help="size of the small corpus; the large one is 10x")
    parser.add_argument("--formats", nargs="+", default=["text", "alpaca"], choices=["text", "alpaca"])
    parser.add_argument("--no-in-memory", action="store_true", help="skip the previous in-memory preparation")
    args = parser.parse_args()
    ways = {"arrow (build_datasets)": prepare_arrow}
    if not args.no_in_memory:
        ways["in-memory (before)"] = prepare_in_memory
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokenizer_dir = make_tokenizer(tmp / "tokenizer")
        for fmt in args.formats:
            for scale in (1, 10):
                corpus = tmp / f"{fmt}_{scale}.{'txt' if fmt == 'text' else 'jsonl'}"
                docs = write_corpus(corpus, args.mb * scale, fmt)
                for name, way in ways.items():
                    cache = str(tmp / f"cache_{fmt}_{scale}_{len(rows)}")
                    result = in_fresh_process(way, tokenizer_dir, str(corpus), fmt, cache)
                    rows.append({"format": fmt, "mb": args.mb * scale, "docs": docs, "way": name, **result})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"\nCPU ({platform.machine()}), word-level tokenizer of {VOCAB} words, {WORDS_PER_DOC}-word documents\n")
    print("| format | way | text (MB) | documents | examples | peak memory (MiB) | 10x / 1x | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        small = next(r for r in rows if r["format"] == row["format"] and r["way"] == row["way"])
        ratio = row["peak_mib"] / small["peak_mib"]
        print(
            f"| {row['format']} | {row['way']} | {row['mb']:g} | {row['docs']:,} | {row['examples']:,} | "
            f"{row['peak_mib']:.0f} | {ratio:.2f} | {row['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
