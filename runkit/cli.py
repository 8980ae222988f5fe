"""One rule for every command line of both halves: a user's mistake is one ``error:`` line that names the culprit
and the fix, exit status 2 (as argparse answers a bad flag); an internal fault keeps its traceback.

Library code raises :class:`UserError` (or one of its subclasses) for what a user can fix: a config key or value,
a path, a file's content, a run folder. The CLIs run their body inside :func:`user_errors`, which also answers
the standard library's errors that only a user's input raises on the way in (a config's ``ValueError`` from the
loaders, a missing file, a full disk, a folder one may not write).
"""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Iterator, Sequence

USAGE_ERROR = 2  # argparse's status for a bad command line


class UserError(ValueError):
    """A mistake in what the user gave, with a message that names it and says what was expected (a ValueError, so
    that code and tests that expect a ValueError for bad input keep catching it)."""


# Errors that, raised while a command reads its inputs or writes its run folder, are the user's to fix.
_USER_OS_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                   errno.ENOTDIR, errno.EISDIR}  # fmt: skip


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is a user's mistake (see the module docstring) rather than an internal fault."""
    if isinstance(err, (UserError, FileNotFoundError, FileExistsError, PermissionError)):
        return True
    if isinstance(err, OSError) and err.errno in _USER_OS_ERRNOS:
        return True
    return type(err) is ValueError  # the config loaders' and checks' own refusals (not a subclass from a library)


def refuse(message: str) -> None:
    """Stops the command with ``error: message`` (exit status 2)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_ERROR)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Runs a command's body: a user's mistake becomes one ``error:`` line and exit status 2; anything else
    propagates with its traceback."""
    try:
        yield
    except Exception as err:  # noqa: BLE001  (sorted below: only a user's mistake is answered here)
        if not is_user_error(err):
            raise
        refuse(_os_message(err) if isinstance(err, OSError) else str(err))


def _os_message(err: OSError) -> str:
    if not err.filename:
        return err.strerror or str(err)  # a message that names its file itself (runkit.files.write_failure)
    where = err.filename if err.filename2 is None else f"{err.filename} -> {err.filename2}"
    hint = {
        errno.ENOSPC: "free some space or choose another OUTPUT_DIR",
        errno.EDQUOT: "free some space or choose another OUTPUT_DIR",
        errno.EACCES: "choose a folder you may write, or fix its permissions",
        errno.EPERM: "choose a folder you may write, or fix its permissions",
        errno.EROFS: "choose a folder on a writable file system",
    }.get(err.errno)
    text = f"{where}: {err.strerror or err}"
    return f"{text} ({hint})" if hint else text


def flags_first(argv: Sequence[str] | None, *flags: str) -> list[str]:
    """``argv`` (``sys.argv[1:]`` when None) with each switch of ``flags`` moved to the front wherever it stood, so
    that ``--overwrite`` after the ``KEY VALUE`` pairs is a switch (argparse's REMAINDER would take it as a value)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return [*(a for a in argv if a in flags), *(a for a in argv if a not in flags)]
