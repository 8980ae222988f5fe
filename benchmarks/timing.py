"""Shared helpers of the benchmarks: interleaved step timing and peak memory in a fresh process."""

from __future__ import annotations

import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch


def timed(step: Callable[[], object], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved_medians(steps: dict[str, Callable[[], object]], warmup: int, iters: int, device: str) -> dict:
    """One step of each in turn per round; the median over rounds, so that drift hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + iters):
        for name, step in steps.items():
            seconds = timed(step, device)
            if i >= warmup:
                times[name].append(seconds)
        print(f"  round {i + 1}/{warmup + iters} done", file=sys.stderr, flush=True)
    return {name: statistics.median(values) for name, values in times.items()}


def current_peak_mib(device: str) -> float:
    """Peak CUDA allocation, or this process's peak resident set (VmHWM restarts at exec; ru_maxrss does not)."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def _child(target, args, queue) -> None:
    queue.put(target(*args))


def in_fresh_process(target: Callable, *args):
    """``target(*args)`` in a spawned process (``target`` must be importable); its return value."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    proc.start()
    while proc.is_alive() and queue.empty():
        time.sleep(0.5)
    if queue.empty():
        raise RuntimeError(f"{getattr(target, '__name__', target)} failed in its process (exit code {proc.exitcode})")
    value = queue.get()
    proc.join()
    return value
