"""Language-model train-step tokens/s and peak memory per transfer type, against TOAST's floor, and
greedy generation, TOAST against the plain model, eager and compiled; all in one run.

    python benchmarks/lm_step_time.py                       # a LLaMA config sized for a 2-core CPU
    python benchmarks/lm_step_time.py --model /path/to/SmolLM2-135M --seq 512 --batch 4
    python benchmarks/lm_step_time.py --types --shape smollm2-135m   # generation only

The floor: one forward without autograd plus one forward/backward on the frozen model whose gradients
reach the activations only. On CUDA, bf16 weights.

Generation: tokens/s of ``generate`` (batch 1, a 16-token prompt, ``--new-tokens`` greedy tokens, prefill
included), eager with the default dynamic cache and compiled (``cache_implementation="static"`` and
``generate``'s own ``torch.compile`` of the decoding step, fullgraph), all rows timed interleaved. Aten
operations per generated token (eager rows) are counted with a ``TorchDispatchMode`` as the difference
between two generation lengths, so the prompt's prefill is left out: on a GPU each is about one launch.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from timing import current_peak_mib, in_fresh_process, interleaved_medians  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from transformers import AutoModelForCausalLM, CompileConfig, LlamaConfig, LlamaForCausalLM, StaticCache  # noqa: E402

from language_generation.config import get_cfg  # noqa: E402
from language_generation.methods import TRANSFER_METHODS  # noqa: E402
from language_generation.toast_policy import ORIGINAL_TUNING_SET  # noqa: E402
from language_generation.two_pass_cache import TwoPassCache  # noqa: E402

FLOOR = "floor"
TYPES = ("toast", "toast-lite", "lora", "end2end")
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
    """The floor's frozen base, or ``transfer`` built by its registration (LoRA: rank 4 on q/k/v/o, its defaults)."""
    base = _base(args)
    if transfer == FLOOR:
        for p in base.parameters():
            p.requires_grad_(False)
        return base
    cfg = get_cfg()
    cfg.MODEL.TRANSFER_TYPE = transfer
    if transfer == "toast":  # the original's recipe on a pre-tuned path; toast-lite: its default set
        cfg.MODEL.TOAST.TRAIN = list(ORIGINAL_TUNING_SET)
    return TRANSFER_METHODS.lookup(transfer).build(base, cfg)


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


class _OpCounter(TorchDispatchMode):
    """Counts every aten operation dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _ops_per_token(generate, short: int = 2, long: int = 10) -> float:
    """Aten operations per generated token: (ops for ``long`` tokens - ops for ``short``) / (long - short)."""
    counts = []
    for new_tokens in (short, long):
        with _OpCounter() as counter:
            generate(new_tokens)
        counts.append(counter.count)
    return (counts[1] - counts[0]) / (long - short)


GENERATION_ROWS = {  # name: (TOAST?, compiled?, use_cache)
    "plain, eager": (False, False, True),
    "TOAST, eager": (True, False, True),
    "plain, compiled": (False, True, True),
    "TOAST, compiled": (True, True, True),
    "TOAST, eager, no KV cache": (True, False, False),
}


def generation_table(args) -> tuple[dict[str, float], dict[str, float]]:
    """tokens/s per row (median of interleaved rounds after a warm-up that compiles) and eager ops per token."""
    prompt = None
    runs, ops = {}, {}
    for name, (toast, compiled, use_cache) in GENERATION_ROWS.items():
        if (not use_cache and args.skip_uncached) or (compiled and args.eager_only):
            continue
        model = (_model(args, "toast") if toast else _model(args, FLOOR)).eval()
        if prompt is None:
            prompt = torch.randint(0, model.config.vocab_size, (1, 16), device=args.device)
        kwargs = dict(do_sample=False, use_cache=use_cache, pad_token_id=0, eos_token_id=None)
        if compiled:
            config = CompileConfig(fullgraph=True, mode="reduce-overhead" if args.device == "cuda" else "default")
            config._compile_all_devices = True  # transformers compiles generate's step on CUDA only unless told
            kwargs.update(cache_implementation="static", compile_config=config)

        def generate(new_tokens: int, model=model, kwargs=kwargs, prompt=prompt):
            with torch.no_grad():
                return model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)

        start = time.perf_counter()
        generate(args.new_tokens)  # compiles the compiled rows
        note = f"{name}: warm-up {time.perf_counter() - start:.1f} s" + (" (compile included)" if compiled else "")
        if not compiled and use_cache:
            ops[name] = _ops_per_token(generate)
            note += f", {ops[name]:,.0f} aten ops per token"
        print(f"  {note}", flush=True)  # kept in the log even if a time limit stops the table
        runs[name] = lambda g=generate: g(args.new_tokens)
    medians = interleaved_medians(runs, 0, args.gen_iters, args.device)
    return {name: args.new_tokens / seconds for name, seconds in medians.items()}, ops


def decoding_step_times(args) -> dict[str, float]:
    """Seconds per decoding step (one token's forward on a static cache, outside ``generate``'s loop), eager
    and ``torch.compile(fullgraph=True)``; rows interleaved round by round (a round: a fresh cache, the
    prompt, then ``--step-count`` timed steps), median over all timed steps."""
    prompt, rows = None, {}
    for toast in (False, True):
        model = (_model(args, "toast") if toast else _model(args, FLOOR)).eval()
        if prompt is None:
            prompt = torch.randint(0, model.config.vocab_size, (1, 16), device=args.device)
        mode = "reduce-overhead" if args.device == "cuda" else "default"
        for compiled in (False, True):
            call = torch.compile(model, fullgraph=True, mode=mode) if compiled else model
            rows[f"{'TOAST' if toast else 'plain'}, {'compiled' if compiled else 'eager'}"] = (model, call, toast)
    times: dict[str, list[float]] = {name: [] for name in rows}
    length = prompt.shape[1] + args.step_count

    def decode(name: str, record: bool) -> None:
        model, call, toast = rows[name]
        cache = TwoPassCache.static(model.config, length) if toast else StaticCache(model.config, length)
        with torch.no_grad(), model.folded_feedback() if toast else contextlib.nullcontext():
            token = model(prompt, past_key_values=cache).logits[:, -1:].argmax(-1)
            for i in range(args.step_count):
                position = torch.tensor([[prompt.shape[1] + i]], device=args.device)
                start = time.perf_counter()
                logits = call(token, past_key_values=cache, position_ids=position).logits
                token = logits[:, -1:].argmax(-1)  # reads the result: the step has finished on a GPU too
                if record and i >= 2:  # the first steps of a round warm caches
                    times[name].append(time.perf_counter() - start)

    for name in rows:  # warm-up: compiles
        start = time.perf_counter()
        decode(name, record=False)
        print(f"  step warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)
    for _ in range(args.gen_iters):
        for name in rows:
            decode(name, record=True)
    return {name: statistics.median(values) for name, values in times.items()}


def print_step_table(args, steps: dict[str, float]) -> None:
    print(
        f"\nDecoding step alone (batch 1, static cache, after a 16-token prompt), median of "
        f"{args.gen_iters} × {args.step_count - 2} interleaved steps\n"
    )
    print("| decoding step | ms | vs. plain, same mode | vs. eager, same model |")
    print("|---|---:|---:|---:|")
    for name, seconds in steps.items():
        model, mode = name.split(", ")
        print(
            f"| {name} | {seconds * 1000:.2f} | {seconds / steps[f'plain, {mode}']:.2f} | "
            f"{steps[f'{model}, eager'] / seconds:.2f} |"
        )


def print_generation_table(args, rates: dict[str, float], ops: dict[str, float]) -> None:
    print(
        f"\nGreedy generation, batch 1, {args.new_tokens} new tokens after a 16-token prompt (prefill included), "
        f"median of {args.gen_iters} interleaved rounds; aten ops per token counted on the eager rows\n"
    )
    print("| generation | tokens/s | vs. plain, same mode | vs. TOAST eager | aten ops / token | ops vs. plain |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rate in rates.items():
        mode = "compiled" if "compiled" in name else "eager"
        plain = rates.get(f"plain, {mode}")
        toast_eager = rates.get("TOAST, eager")
        count = ops.get(name)
        plain_ops = ops.get("plain, eager")
        cells = [
            f"{rate:.1f}",
            f"{rate / plain:.2f}" if plain and name.startswith("TOAST") else "",
            f"{rate / toast_eager:.2f}" if toast_eager and name.startswith("TOAST") else "",
            f"{count:,.0f}" if count is not None else "",
            f"{count / plain_ops:.2f}" if count is not None and plain_ops and name.startswith("TOAST") else "",
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="a local model folder or hub name (default: a CPU-sized LLaMA)")
    parser.add_argument(
        "--shape", default="cpu", choices=sorted(SHAPES), help="random-weight LLaMA shape when --model is not given"
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--types", nargs="*", default=list(TYPES), choices=TYPES, help="none: generation only")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64, help="0 skips the generation measurement")
    parser.add_argument("--gen-iters", type=int, default=3, help="timed generation rounds (after one warm-up)")
    parser.add_argument("--skip-uncached", action="store_true", help="leave out TOAST generation without a cache")
    parser.add_argument("--eager-only", action="store_true", help="leave out the compiled generation rows")
    parser.add_argument(
        "--step-count", type=int, default=0, help="> 2: also time single decoding steps, eager and compiled"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads (0: torch's default); 1 is steadier on a shared machine"
    )
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    device = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(f"{args.model or f'random LLaMA, shape {args.shape}'}, {device}, torch {torch.__version__}", flush=True)
    if args.types:
        train_table(args)
    if args.new_tokens > 0:
        print_generation_table(args, *generation_table(args))
    if args.step_count > 0:
        print_step_table(args, decoding_step_times(args))


def train_table(args) -> None:
    names = [FLOOR, *args.types]
    setups = {name: _setup(args, name) for name in names}
    medians = interleaved_medians({n: s[0] for n, s in setups.items()}, args.warmup, args.iters, args.device)
    counts = {n: s[1] for n, s in setups.items()}
    del setups
    peaks = {name: in_fresh_process(peak_memory, args, name) for name in names}
    tokens = args.batch * args.seq
    print(f"\nTraining, batch {args.batch} × {args.seq} tokens, median of {args.iters} interleaved rounds\n")
    print("| transfer | step (ms) | tokens/s | step / TOAST floor | peak memory (MiB) | trainable params |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        label = LABELS.get(name, name)
        seconds = medians[name]
        print(
            f"| {label} | {seconds * 1000:.0f} | {tokens / seconds:.0f} | {seconds / medians[FLOOR]:.2f} | "
            f"{peaks[name]:.0f} | {counts[name]:,} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
