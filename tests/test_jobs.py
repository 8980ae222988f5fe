"""experiments.jobs: runs side by side in spawned processes, each after the jobs it waits for, one share of the cores."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from experiments.jobs import Job, JobFailed, check_jobs, run_jobs


def stamp(folder: str, name: str, seconds: float = 0.0) -> dict:
    """Writes when it started and ended; returns its pid and thread count."""
    import torch

    start = time.time()
    time.sleep(seconds)
    Path(folder, name).write_text(f"{start} {time.time()}")
    return {"pid": os.getpid(), "threads": torch.get_num_threads()}


def meet(folder: str, name: str, other: str) -> bool:
    """True when ``other`` starts while this one is running (the two ran at the same time)."""
    Path(folder, f"started-{name}").touch()
    deadline = time.time() + 60
    while time.time() < deadline:
        if Path(folder, f"started-{other}").exists():
            return True
        time.sleep(0.05)
    return False


def fail(message: str) -> None:
    raise ValueError(message)


def _span(folder: Path, name: str) -> tuple[float, float]:
    start, end = (folder / name).read_text().split()
    return float(start), float(end)


def test_two_workers_run_side_by_side_after_their_dependencies_with_one_thread_each(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    folder = str(tmp_path)
    jobs = {
        "a": Job(meet, (folder, "a", "b")),
        "b": Job(meet, (folder, "b", "a")),
        "c": Job(stamp, (folder, "c", 0.3), ("a",)),
        "d": Job(stamp, (folder, "d"), ("c", "b")),
    }
    finished = []
    results = run_jobs(jobs, workers=2, on_done=lambda name, result, seconds: finished.append(name))
    assert results["a"] is True and results["b"] is True  # each saw the other start: they overlapped
    assert _span(tmp_path, "d")[0] >= _span(tmp_path, "c")[1]  # d waited for c
    assert finished.index("c") > finished.index("a") and finished[-1] == "d"
    assert {results["c"]["pid"], results["d"]["pid"]} - {os.getpid()}  # in workers, not here
    assert results["c"]["threads"] == results["d"]["threads"] == 1  # 2 cores / 2 workers
    assert "OMP_NUM_THREADS" not in os.environ  # the parent's environment is restored


def test_one_worker_runs_here_in_dependency_order(tmp_path):
    folder = str(tmp_path)
    jobs = {"late": Job(stamp, (folder, "late"), ("early",)), "early": Job(stamp, (folder, "early"))}
    seconds = {}
    results = run_jobs(jobs, workers=1, on_done=lambda name, result, took: seconds.setdefault(name, took))
    assert results["late"]["pid"] == results["early"]["pid"] == os.getpid()
    assert _span(tmp_path, "late")[0] >= _span(tmp_path, "early")[1]
    assert list(seconds) == ["early", "late"] and all(s >= 0 for s in seconds.values())


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_job_is_named_and_its_dependents_never_run(tmp_path, workers):
    folder = str(tmp_path)
    jobs = {"broken": Job(fail, ("no such checkpoint",)), "after": Job(stamp, (folder, "after"), ("broken",))}
    with pytest.raises(JobFailed, match="job 'broken' failed: no such checkpoint") as err:
        run_jobs(jobs, workers=workers)
    assert isinstance(err.value.__cause__, ValueError)
    assert not (tmp_path / "after").exists()


def test_unknown_dependencies_cycles_and_zero_workers_are_refused():
    with pytest.raises(ValueError, match=r"job 'a' waits for \['z'\], which are not jobs"):
        check_jobs({"a": Job(fail, ("x",), ("z",))})
    with pytest.raises(ValueError, match=r"cycle: \['a', 'b'\]"):
        check_jobs({"a": Job(fail, ("x",), ("b",)), "b": Job(fail, ("x",), ("a",)), "c": Job(fail, ("x",))})
    with pytest.raises(ValueError, match="workers must be at least 1"):
        run_jobs({"a": Job(fail, ("x",))}, workers=0)


def test_an_error_in_on_done_is_the_callers_not_a_failed_job(tmp_path):
    def broken_record(name, result, seconds):
        raise KeyError(name)

    with pytest.raises(KeyError):
        run_jobs({"a": Job(stamp, (str(tmp_path), "a"))}, workers=1, on_done=broken_record)
    assert (tmp_path / "a").exists()  # the job itself ran and finished
