"""Content fingerprints of input files (weights, data, images), so that a run, a cache or a prediction notices
a file changed behind the same path, even when it was rewritten with the same size and its mtime restored
(``cp -p``, ``rsync -t``).

Hashing a 14 GB checkpoint on every start is too slow, so each file's hash is computed once and memoised in a
small JSON index keyed by (path, size, mtime, ctime, inode). ``ctime`` cannot be set from user space: any
write or ``chmod`` changes it, so a same-size rewrite with a restored mtime still misses the memo and is hashed
again. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from runkit.files import atomic_write_text

DIGEST_CHARS = 16  # 64 bits of SHA-256: plenty to tell two versions of one file apart
_CHUNK = 1 << 20


def default_index_path() -> Path:
    """The memo of file hashes: ``$TOAST_FINGERPRINT_INDEX`` or ``~/.cache/toast/fingerprints.json``."""
    env = os.environ.get("TOAST_FINGERPRINT_INDEX")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "toast" / "fingerprints.json"


def _stat_key(resolved: str) -> str:
    """``path|size|mtime|ctime|inode`` of a resolved path; FileNotFoundError naming it when it is not a file."""
    try:
        st = os.stat(resolved)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise FileNotFoundError(f"cannot fingerprint {resolved}: not a file")
    return f"{resolved}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


def sha256_of_file(path: str | os.PathLike) -> str:
    """The file's SHA-256, first ``DIGEST_CHARS`` hex characters (read in 1 MiB chunks: constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:DIGEST_CHARS]


def _load_index(index_path: Path) -> dict[str, str]:
    try:
        data = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a missing or damaged memo only costs re-hashing; it never changes a result
    return data if isinstance(data, dict) else {}


class _Memo:
    """The index, loaded once and written once for a batch of files (10k images cost one read and one write)."""

    def __init__(self, index_path: Path | None) -> None:
        self.path = index_path or default_index_path()
        self.index = _load_index(self.path)
        self.by_path = {key.split("|", 1)[0]: key for key in self.index}  # one entry per path
        self.dirty = False

    def digest(self, path: Path) -> tuple[str, str]:
        """(resolved path, content hash); one ``resolve`` and one ``stat`` when the memo knows the file."""
        resolved = str(path.resolve())
        key = _stat_key(resolved)
        if key in self.index:
            return resolved, self.index[key]
        digest = sha256_of_file(resolved)
        if _stat_key(resolved) == key:  # not rewritten while we read it
            old = self.by_path.get(resolved)
            if old is not None:
                self.index.pop(old, None)
            self.by_path[resolved] = key
            self.index[key] = digest
            self.dirty = True
        return resolved, digest

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            atomic_write_text(self.path, json.dumps(self.index, sort_keys=True))
        except OSError:
            pass  # read-only home or full disk: hashing again next time is the only cost


def file_fingerprint(path: str | os.PathLike, index_path: Path | None = None) -> str:
    """Content hash of one file, memoised by (path, size, mtime, ctime, inode). Raises FileNotFoundError
    naming the path when it does not exist."""
    memo = _Memo(index_path)
    _, digest = memo.digest(Path(path))
    memo.save()
    return digest


def files_fingerprint(paths: Iterable[str | os.PathLike], index_path: Path | None = None) -> dict[str, str]:
    """``{resolved path: content hash}`` for each file (a folder contributes every file under it, sorted).

    The memo is read and written once for the whole batch."""
    memo = _Memo(index_path)
    out: dict[str, str] = {}
    try:
        for path in paths:
            path = Path(path)
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for file in files:
                resolved, digest = memo.digest(file)
                out[resolved] = digest
    finally:
        memo.save()  # what was hashed before an error is kept
    return out


def changed_files(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """The paths whose hash differs, that appeared, or that vanished, sorted: what an error message names."""
    return sorted(p for p in set(recorded) | set(current) if recorded.get(p) != current.get(p))
