"""Atomic file writes: a crash mid-write never leaves a half-written checkpoint or result behind."""

from __future__ import annotations

import contextlib
import os
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
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp (and some writers) make 0600; open() honours the umask
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
