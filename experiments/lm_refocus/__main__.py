"""``python -m experiments.lm_refocus``: the language refocusing study (see ``experiment.py``).

Writes ``OUT/summary.md``, ``summary.csv``, ``summary.png`` and ``report.md``; re-running resumes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .experiment import Setup, main_run
from .methods import METHODS
from .summary import write_report, write_summary
from .tasks import FAMILIES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.lm_refocus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="output/lm_refocus")
    parser.add_argument("--model", default="", help="a from_pretrained folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 20, 30])
    parser.add_argument("--pretune-steps", type=int, default=60)
    parser.add_argument(
        "--pretune-lrs",
        nargs="+",
        type=float,
        default=[1e-3],
        help="pre-tuning lrs, the best on the corpus' val LM loss kept (grown past an edge); one: fixed, not chosen "
        "(e.g. 1e-4 3e-4 1e-3: about 3x the pre-tuning stage)",
    )
    parser.add_argument(
        "--pretune-lengths",
        nargs="*",
        type=float,
        default=[],
        help="the pre-tuning curve: lengths as multiples of --pretune-steps, e.g. 0 1 4 16 (default: none)",
    )
    parser.add_argument("--batch", type=int, default=4, help="tuning batch size (every method)")
    parser.add_argument("--grid", type=int, default=3, choices=(1, 3), help="3: lr grid on val; 1: middle lr")
    parser.add_argument(
        "--jobs", type=int, default=1, help="training runs side by side (1: a 135M model keeps 2 cores busy)"
    )
    parser.add_argument("--train-per-family", type=int, default=50)
    parser.add_argument("--val-per-family", type=int, default=10)
    parser.add_argument("--test-per-family", type=int, default=50)
    parser.add_argument("--corpus-packages", nargs="*", default=["torch", "transformers", "datasets", "numpy"])
    args = parser.parse_args(argv)
    start = time.time()
    out = Path(args.out)
    if args.model:
        model = Path(args.model)
    else:
        from language_generation.demo.smollm2 import cached_model

        model = cached_model(out / "model")
    setup = Setup(
        out=out,
        model=model,
        methods=args.methods,
        families=tuple(args.families),
        seeds=args.seeds,
        steps=sorted(args.steps),
        pretune_steps=args.pretune_steps,
        pretune_lrs=tuple(args.pretune_lrs),
        pretune_lengths=tuple(args.pretune_lengths),
        batch=args.batch,
        grid_size=args.grid,
        jobs=args.jobs,
        train_per_family=args.train_per_family,
        val_per_family=args.val_per_family,
        test_per_family=args.test_per_family,
        corpus_packages=tuple(args.corpus_packages),
    )
    result = main_run(setup)
    summary = write_summary(out, result, setup)
    write_report(out, result, setup, summary, time.time() - start)
    print("\n" + summary)
    print(f"wall time of this invocation: {(time.time() - start) / 60:.1f} min; files in {out}")


if __name__ == "__main__":
    main()
