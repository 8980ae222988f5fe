"""One live run per run folder, for both halves: ``OUTPUT_DIR/.lock``, held (``flock``) by the run for its whole
life, so that a second run (or an ``--overwrite``) into the folder of a live one is refused instead of training
beside it or deleting its files.

The lock is the kernel's: it goes away with the process, however it ends. The file holds the holder's process id,
host and command line, so a refusal names the live process; a killed run leaves its line behind, and the next run
takes the lock over with a line saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from runkit.cli import UserError

logger = logging.getLogger(__name__)

LOCK = ".lock"


class RunLocked(UserError):
    """Another live process holds the run folder's lock."""


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip()


@contextlib.contextmanager
def run_lock(out: str | os.PathLike) -> Iterator[None]:
    """An exclusive lock on ``out/.lock`` for the life of the block; a second live run in ``out`` is refused
    (:class:`RunLocked`, naming the folder and the live process)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 (held open for the whole run)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle) or "a process that has not written its id yet"
            raise RunLocked(
                f"OUTPUT_DIR {out} is in use by another live run ({holder}, holding {out / LOCK}); wait for it to end "
                "or choose another OUTPUT_DIR"
            ) from None
        stale = _holder(handle)
        if stale:
            logger.warning("%s: taking over the lock of a run whose process is gone (%s)", out / LOCK, stale)
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()  # a clean end leaves no holder behind; the lock itself goes with the close
    finally:
        handle.close()


def wait_for_lock(out: str | os.PathLike) -> None:
    """Blocks until no live run holds ``out``'s lock (``tune`` waits for runs another copy is doing)."""
    path = Path(out) / LOCK
    if not path.is_file():
        return
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
