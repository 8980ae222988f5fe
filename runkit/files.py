"""Atomic file writes: a crash mid-write never leaves a half-written checkpoint or result behind."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp (and some writers) make 0600; open() honours the umask
            os.replace(tmp, path)
        except Exception as err:  # noqa: BLE001  (only a write that failed for want of space is explained)
            explained = write_failure(err, path)
            if explained is None:
                raise
            raise explained from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# What torch.save (its C++ stream writer) and safetensors say when a write fails: neither names the file, torch
# not even ENOSPC.
_WRITER_FAILURES = (
    "basic_ios::clear",
    "iostream error",
    "file write failed",
    "PytorchStreamWriter failed",
    "unexpected pos",  # the zip writer's position check after a short write
    "os error 28",  # safetensors (Rust): ENOSPC inside its own error type
    "No space left on device",
)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_failure(err: BaseException, path: str | os.PathLike) -> OSError | None:
    """An OSError naming ``path``, the likely cause and the free space left, for a write that failed for want of
    space (ENOSPC, EDQUOT, or the bare stream errors of torch and safetensors, then taken as ENOSPC, their likely
    cause); ``None`` for any other error (re-raised as it is)."""
    disk_full = isinstance(err, OSError) and err.errno in _DISK_FULL
    writer_stream = not isinstance(err, OSError) and any(text in str(err) for text in _WRITER_FAILURES)
    if not (disk_full or writer_stream):
        return None
    folder = Path(path).parent
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    cause = "the disk (or quota) is full" if disk_full else "most likely the disk (or quota) is full"
    return OSError(
        err.errno if disk_full else errno.ENOSPC,  # torch's stream errors: the likely cause, as the message says
        f"writing {path} failed: {cause} ({free} on the filesystem of {folder}); free space there and run "
        f"the command again (the previous {Path(path).name}, if any, is intact). Cause: {err}",
    )


def current_umask() -> int:
    """The process's umask (read by setting and restoring it: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """Writes a matplotlib figure as PNG atomically (a reader never sees half a file), then closes it."""
    import matplotlib.pyplot as plt  # only the callers that draw need matplotlib

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **{"dpi": 100, **savefig_kwargs})
    plt.close(fig)
    return Path(path)


def check_output_file(path: str | os.PathLike, example: str = "output.txt") -> None:
    """Refuses an ``--output`` that cannot be written (a folder, a path under a file, an unwritable folder)
    before any work is spent; missing folders are fine (the atomic writers create them)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--output {path} is a folder; give a file name such as {path / example}")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"--output {path} cannot be written: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--output {path} cannot be written: no write permission in {folder}")


def read_json_object(path: str | os.PathLike, fix: str) -> dict:
    """The JSON object in ``path``; malformed JSON or another JSON value is an error naming the file, with ``fix``
    (what the user can do about it)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {fix}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, expected a JSON object; {fix}")
    return data


def read_json_record(path: str | os.PathLike) -> dict | None:
    """A run's JSON record (``inputs.json``, ...), or ``None`` when the run has none; a damaged one is an error
    naming the file and how to get past it."""
    path = Path(path)
    return read_json_object(path, "delete it to skip the input check") if path.is_file() else None


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Appends ``record`` as one line of a JSON-lines file. A last line that a kill cut short (no newline after
    it) is removed first, with a warning, so that the new record never joins it into a damaged line; a full
    disk is named as :func:`write_failure` names it."""
    path = Path(path)
    try:
        with open(path, "ab+") as handle:
            _drop_cut_last_line(handle, path)
            handle.write((json.dumps(record) + "\n").encode("utf-8"))
    except OSError as err:
        explained = write_failure(err, path)
        if explained is None:
            raise
        raise explained from err


def _drop_cut_last_line(handle, path: Path) -> None:
    end = handle.seek(0, os.SEEK_END)
    if end == 0:
        return
    handle.seek(end - 1)
    if handle.read(1) == b"\n":
        return
    start = end
    while start > 0:  # back to the byte after the last newline, a block at a time
        step = min(start, 1 << 16)
        handle.seek(start - step)
        block = handle.read(step)
        cut = block.rfind(b"\n")
        if cut >= 0:
            start = start - step + cut + 1
            break
        start -= step
    handle.truncate(start)
    logging.getLogger(__name__).warning("%s: its last line was cut short (a killed write); removed", path)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines file (``metrics.jsonl``), blank lines skipped; ``[]`` when there is no file.

    A run killed while appending leaves a last line without its newline: that line is left out with a warning
    (a resumed run writes it again). A damaged line anywhere else stops, naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as err:
            if number == len(lines):  # no newline after it: the write was cut short
                logging.getLogger(__name__).warning(
                    "%s: its last line is incomplete (a write cut short); left out", path
                )
                break
            raise ValueError(f"{path}, line {number}: not a JSON record ({err}); remove the line to go on") from err
    return records
