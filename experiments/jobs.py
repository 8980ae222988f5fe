"""Independent runs of an experiment side by side: a process pool that starts each job once the jobs it needs
have finished.

Why: a small model leaves a second CPU thread partly idle. On the 2-core CPU here two one-thread processes
finished the vision experiment's runs (a ViT-S/14 at 56 px, batch 16) 1.26x faster than one two-thread
process, and the language experiment's (a 135M LLaMA, 4 x 192 tokens) 0.87x as fast
(``benchmarks/parallel_jobs.py``), so the vision experiment defaults to two workers and the language one to
one. Jobs communicate through their run folders (every run is resumable and skipped once finished), so a
job's arguments are known up front and ``after`` only orders them.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Job:
    """``fn(*args)`` (picklable: a module-level function), started once every job named in ``after`` is done."""

    fn: Callable[..., Any]
    args: tuple = ()
    after: tuple[str, ...] = ()


class JobFailed(RuntimeError):
    """A job raised; the message names it, the cause is its own exception (with the worker's traceback)."""


def default_workers() -> int:
    """2 on a CPU-only machine with at least 2 cores (the vision runs' measured gain), else 1: runs that share
    one GPU gain little and risk its memory."""
    import torch

    return 1 if torch.cuda.is_available() else max(1, min(2, os.cpu_count() or 1))


def check_jobs(jobs: Mapping[str, Job]) -> list[str]:
    """The names in an order that respects ``after``; unknown names and cycles stop with the culprit named."""
    for name, job in jobs.items():
        unknown = [dep for dep in job.after if dep not in jobs]
        if unknown:
            raise ValueError(f"job {name!r} waits for {unknown}, which are not jobs; jobs: {list(jobs)}")
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(jobs):
        ready = [n for n, job in jobs.items() if n not in done and all(d in done for d in job.after)]
        if not ready:
            raise ValueError(f"jobs wait for each other in a cycle: {sorted(set(jobs) - done)}")
        order += ready
        done.update(ready)
    return order


def _timed(fn: Callable[..., Any], args: tuple) -> tuple[Any, float]:
    start = time.time()
    result = fn(*args)
    return result, time.time() - start


def _one_share_of_the_cores(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_jobs(
    jobs: Mapping[str, Job],
    workers: int = 1,
    on_done: Callable[[str, Any, float], None] | None = None,
) -> dict[str, Any]:
    """Every job's result by name. ``workers`` = 1 runs them here, in order; more runs them in that many
    spawned processes, each with an equal share of the cores (``OMP_NUM_THREADS`` when set is the share).
    ``on_done(name, result, seconds)`` is called here as each job finishes. A failing job stops the rest
    (running ones finish, queued ones are cancelled) and raises :class:`JobFailed` naming it."""
    order = check_jobs(jobs)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    results: dict[str, Any] = {}

    def finish(name: str, result: Any, seconds: float) -> None:
        results[name] = result
        if on_done is not None:
            on_done(name, result, seconds)

    if workers == 1:
        for name in order:
            try:
                outcome = _timed(jobs[name].fn, jobs[name].args)
            except Exception as err:
                raise JobFailed(f"job {name!r} failed: {err}") from err
            finish(name, *outcome)
        return results

    threads = int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // workers))
    saved = {key: os.environ.get(key) for key in (*_THREAD_VARIABLES, "TOKENIZERS_PARALLELISM")}
    os.environ.update({key: str(threads) for key in _THREAD_VARIABLES} | {"TOKENIZERS_PARALLELISM": "false"})
    try:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_one_share_of_the_cores,
            initargs=(threads,),
        ) as pool:
            running: dict[Future, str] = {}
            waiting = list(order)
            while waiting or running:
                for name in [n for n in waiting if all(d in results for d in jobs[n].after)]:
                    running[pool.submit(_timed, jobs[name].fn, jobs[name].args)] = name
                    waiting.remove(name)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as err:
                        for other in running:
                            other.cancel()
                        raise JobFailed(f"job {name!r} failed: {err}") from err
                    finish(name, *outcome)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return results
