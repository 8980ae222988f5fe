"""Language-model train-step tokens/s and peak memory per transfer type, against TOAST's floor, and
generation tokens/s with and without the KV cache; all in one run.

    python benchmarks/lm_step_time.py                       # a LLaMA config sized for a 2-core CPU
    python benchmarks/lm_step_time.py --model /path/to/SmolLM2-135M --seq 512 --batch 4

The floor: one forward without autograd plus one forward/backward on the frozen model whose gradients
reach the activations only. On CUDA, bf16 weights.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from timing import current_peak_mib, in_fresh_process, interleaved_medians, timed  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM  # noqa: E402

from language_generation.config import get_cfg  # noqa: E402
from language_generation.model import ORIGINAL_TUNING_SET, attach_toast  # noqa: E402

FLOOR = "floor"
TYPES = ("toast", "toast-lite", "lora", "full")
LABELS = {
    FLOOR: "TOAST floor (no-grad fwd + fwd/bwd to activations)",
    "toast": "toast (B_i, p)",
    "toast-lite": "toast-lite (rank-4 updates of A_i and B_i, p)",
}


# Random-weight LLaMA shapes (speed does not depend on the weights' values): one sized for this CPU, and
# SmolLM2-135M's, for machines the demo's weights package cannot reach.
SHAPES = {
    "cpu": dict(
        vocab_size=8192,
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=2048,
    ),
    "smollm2-135m": dict(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
    ),
}


def _base(args):
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    if args.model:
        return AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(args.device)
    return LlamaForCausalLM(LlamaConfig(**SHAPES[args.shape])).to(device=args.device, dtype=dtype)


def _model(args, transfer: str):
    base = _base(args)
    if transfer in (FLOOR, "full"):
        for p in base.parameters():
            p.requires_grad_(transfer == "full")
        return base
    if transfer == "lora":
        from peft import LoraConfig, get_peft_model

        return get_peft_model(
            base, LoraConfig(r=4, lora_alpha=1, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        )
    cfg = get_cfg()
    cfg.MODEL.TRANSFER_TYPE = transfer
    if transfer == "toast":  # the original's recipe on a pre-tuned path; toast-lite: its default set
        cfg.MODEL.TOAST.TRAIN = list(ORIGINAL_TUNING_SET)
    return attach_toast(base, cfg)


def _setup(args, transfer: str):
    model = _model(args, transfer).train()
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), device=args.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5) if params else None
    base = model.base if hasattr(model, "base") else model

    def floor_step():
        with torch.no_grad():
            base.model(ids)
        embeds = base.model.embed_tokens(ids).detach().requires_grad_()
        base(inputs_embeds=embeds, labels=ids).loss.backward()

    def step():
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return (floor_step if transfer == FLOOR else step), sum(p.numel() for p in params)


def peak_memory(args, transfer: str) -> float:
    step, _ = _setup(args, transfer)
    for _ in range(2):
        step()
    return current_peak_mib(args.device)


def generation_rates(args) -> dict[str, float]:
    model = _model(args, "toast").eval()
    prompt = torch.randint(0, model.config.vocab_size, (1, 16), device=args.device)
    kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
    rates = {}
    with torch.no_grad():
        for name, use_cache in (("cached", True), ("uncached", False)):
            seconds = timed(lambda c=use_cache: model.generate(prompt, use_cache=c, **kwargs), args.device)
            rates[name] = args.new_tokens / seconds
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="a local model folder or hub name (default: a CPU-sized LLaMA)")
    parser.add_argument(
        "--shape", default="cpu", choices=sorted(SHAPES), help="random-weight LLaMA shape when --model is not given"
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--types", nargs="+", default=list(TYPES), choices=TYPES)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=256, help="0 skips the generation measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    names = [FLOOR, *args.types]
    setups = {name: _setup(args, name) for name in names}
    medians = interleaved_medians({n: s[0] for n, s in setups.items()}, args.warmup, args.iters, args.device)
    counts = {n: s[1] for n, s in setups.items()}
    del setups
    peaks = {name: in_fresh_process(peak_memory, args, name) for name in names}
    rates = generation_rates(args) if args.new_tokens > 0 else None

    tokens = args.batch * args.seq
    device = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"{args.model or f'random LLaMA, shape {args.shape}'}, batch {args.batch} × {args.seq} tokens, "
        f"{device}, torch {torch.__version__}, median of {args.iters} interleaved rounds\n"
    )
    print("| transfer | step (ms) | tokens/s | step / TOAST floor | peak memory (MiB) | trainable params |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        label = LABELS.get(name, name)
        seconds = medians[name]
        print(
            f"| {label} | {seconds * 1000:.0f} | {tokens / seconds:.0f} | {seconds / medians[FLOOR]:.2f} | "
            f"{peaks[name]:.0f} | {counts[name]:,} |"
        )
    if rates is None:
        return
    print(
        f"\nTOAST greedy generation, {args.new_tokens} new tokens after a 16-token prompt: "
        f"{rates['cached']:.1f} tokens/s with the KV cache, {rates['uncached']:.1f} without "
        f"({rates['cached'] / rates['uncached']:.1f}× faster)"
    )


if __name__ == "__main__":
    main()
